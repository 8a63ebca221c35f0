package mountctl

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fake is an in-memory Controller for handler and client tests. Objects
// maps paths to objects; Err, if it has an entry for a method name
// ("Add", "Stat", ...), makes that method fail with it. Calls records
// "Method arg" for each call. Its methods are safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	Objects map[string]Object
	Err     map[string]error
	Calls   []string
	Node    NodeStatus
	Cluster []Node
	// Hook, if set, rewrites every object a method returns (and stores
	// it): tests use it to make progress happen.
	Hook func(method string, o Object) Object
}

// NewFake returns a Fake holding objs (by path).
func NewFake(objs ...Object) *Fake {
	f := &Fake{Objects: map[string]Object{}, Err: map[string]error{}}
	for _, o := range objs {
		f.Objects[o.Path] = o
	}
	f.Node = NodeStatus{ID: "fake", Version: "test", Started: time.Unix(0, 0).UTC(), Etcd: EtcdHealth{Healthy: true}}
	f.Cluster = []Node{{ID: "fake", PeerAddr: "127.0.0.1:6881", Live: true, Self: true}}
	return f
}

// SetErr makes method fail with err (nil clears it).
func (f *Fake) SetErr(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.Err, method)
		return
	}
	f.Err[method] = err
}

// CallLog returns the calls so far.
func (f *Fake) CallLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.Calls...)
}

func (f *Fake) call(method, arg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, strings.TrimSpace(method+" "+arg))
	return f.Err[method]
}

func (f *Fake) get(path string) (Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.Objects[path]
	if !ok {
		return Object{}, NotFound(fmt.Errorf("index: not found: %s", path))
	}
	return o, nil
}

func (f *Fake) put(o Object) Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Objects[o.Path] = o
	return o
}

// hook applies Hook to what method returns.
func (f *Fake) hook(method string, o Object, err error) (Object, error) {
	f.mu.Lock()
	h := f.Hook
	f.mu.Unlock()
	if err != nil || h == nil {
		return o, err
	}
	return f.put(h(method, o)), nil
}

// Add implements Controller: the object appears complete.
func (f *Fake) Add(_ context.Context, req AddRequest) (Object, error) {
	if err := f.call("Add", req.URL); err != nil {
		return Object{}, err
	}
	p := req.Path
	if p == "" {
		p = req.URL[strings.Index(req.URL, "://")+3:]
		p = p[strings.Index(p+"/", "/")+1:]
	}
	return f.put(Object{Path: p, InfoHash: strings.Repeat("a", 40), State: StateComplete, Progress: 1,
		Source: Source{Kind: "url", URL: req.URL}}), nil
}

// Publish implements Controller.
func (f *Fake) Publish(_ context.Context, req PublishRequest) (Object, error) {
	if err := f.call("Publish", req.File); err != nil {
		return Object{}, err
	}
	return f.put(Object{Path: req.Path, InfoHash: strings.Repeat("b", 40), State: StateComplete, Progress: 1,
		Source: Source{Kind: "file", File: req.File}}), nil
}

// List implements Controller.
func (f *Fake) List(_ context.Context, req ListRequest) ([]Object, error) {
	if err := f.call("List", req.Prefix); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Object
	for p, o := range f.Objects {
		if req.Prefix != "" && p != req.Prefix && !strings.HasPrefix(p, req.Prefix+"/") {
			continue
		}
		if req.Local && o.State == StateAbsent {
			continue
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Stat implements Controller.
func (f *Fake) Stat(_ context.Context, path string) (Object, error) {
	if err := f.call("Stat", path); err != nil {
		return Object{}, err
	}
	o, err := f.get(path)
	return f.hook("Stat", o, err)
}

// Warm implements Controller: the object becomes complete (unless a Hook
// is set, which then decides).
func (f *Fake) Warm(_ context.Context, path string, wait bool) (Object, error) {
	if err := f.call("Warm", fmt.Sprintf("%s wait=%v", path, wait)); err != nil {
		return Object{}, err
	}
	o, err := f.get(path)
	if err != nil {
		return o, err
	}
	f.mu.Lock()
	hooked := f.Hook != nil
	f.mu.Unlock()
	if hooked {
		return f.hook("Warm", o, nil) // the Hook makes the progress
	}
	o.State, o.Progress, o.BytesCompleted = StateComplete, 1, o.Size
	return f.put(o), nil
}

// Evict implements Controller.
func (f *Fake) Evict(_ context.Context, path string) (Object, error) {
	if err := f.call("Evict", path); err != nil {
		return Object{}, err
	}
	o, err := f.get(path)
	if err != nil {
		return o, err
	}
	o.State, o.Progress, o.BytesCompleted = StateAbsent, 0, 0
	return f.put(o), nil
}

// Delete implements Controller.
func (f *Fake) Delete(_ context.Context, path string, evict bool) (DeleteResult, error) {
	if err := f.call("Delete", fmt.Sprintf("%s evict=%v", path, evict)); err != nil {
		return DeleteResult{}, err
	}
	o, err := f.get(path)
	if err != nil {
		return DeleteResult{}, err
	}
	f.mu.Lock()
	delete(f.Objects, path)
	f.mu.Unlock()
	return DeleteResult{Path: path, InfoHash: o.InfoHash, Evicted: evict}, nil
}

// Pin implements Controller.
func (f *Fake) Pin(_ context.Context, path string) (Object, error) {
	if err := f.call("Pin", path); err != nil {
		return Object{}, err
	}
	o, err := f.get(path)
	if err != nil {
		return o, err
	}
	o.Pinned = true
	return f.put(o), nil
}

// Unpin implements Controller.
func (f *Fake) Unpin(_ context.Context, path string) (Object, error) {
	if err := f.call("Unpin", path); err != nil {
		return Object{}, err
	}
	o, err := f.get(path)
	if err != nil {
		return o, err
	}
	o.Pinned = false
	return f.put(o), nil
}

// Status implements Controller.
func (f *Fake) Status(context.Context) (NodeStatus, error) {
	if err := f.call("Status", ""); err != nil {
		return NodeStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Node, nil
}

// Nodes implements Controller.
func (f *Fake) Nodes(context.Context) ([]Node, error) {
	if err := f.call("Nodes", ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Node(nil), f.Cluster...), nil
}

var _ Controller = (*Fake)(nil)
