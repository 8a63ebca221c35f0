package index

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
)

// EventType is the kind of a cache change.
type EventType int

// Event types.
const (
	EventPut EventType = iota
	EventDelete
	// EventResync tells a subscriber that it missed events because its
	// buffer was full: it should read the namespace again. Path and
	// Record are empty. Events after it are delivered as usual.
	EventResync
)

// subscriberBuffer is how many events wait for a slow subscriber before
// it is owed a resync.
const subscriberBuffer = 1024

// Event is a change of the namespace seen by a Cache.
type Event struct {
	Type   EventType
	Path   string
	Record Record // the new record (put) or the removed one (delete)
}

// Entry is a directory entry: a subdirectory or an object.
type Entry struct {
	Name   string
	Dir    bool
	Record Record // objects only
}

// Cache is a local copy of the namespace (current records), fed by an etcd
// watch. Reads never touch etcd. On a watch error (compaction, lost leader,
// reconnect) it lists the namespace again and resumes watching from there;
// subscribers get the difference as events.
type Cache struct {
	ix *Index

	mu      sync.RWMutex
	objects map[string]Record
	dirs    map[string]map[string]int // dir → child name → objects below (0: object itself counts 1)
	rev     int64
	synced  chan struct{}
	once    sync.Once
	subs    map[*subscriber]struct{}
	cancel  context.CancelFunc
	stopped chan struct{}
}

// NewCache starts a cache of the namespace. Call Close to stop it.
func (ix *Index) NewCache() *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		ix:      ix,
		objects: map[string]Record{},
		dirs:    map[string]map[string]int{"": {}},
		synced:  make(chan struct{}),
		subs:    map[*subscriber]struct{}{},
		cancel:  cancel,
		stopped: make(chan struct{}),
	}
	go c.run(ctx)
	return c
}

// Close stops the cache and closes subscriber channels.
func (c *Cache) Close() {
	c.cancel()
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		c.unsubscribe(s)
	}
}

// WaitSynced blocks until the first listing is loaded.
func (c *Cache) WaitSynced(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Revision returns the etcd revision the cache reflects.
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Lookup returns the current record of path.
func (c *Cache) Lookup(path string) (Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.objects[path]
	return r, ok
}

// IsDir reports whether dir ("" is the root) is a directory.
func (c *Cache) IsDir(dir string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.dirs[dir]
	return ok
}

// List returns the entries of dir ("" is the root), sorted by name.
func (c *Cache) List(dir string) ([]Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	children, ok := c.dirs[dir]
	if !ok {
		return nil, false
	}
	out := make([]Entry, 0, len(children))
	for name := range children {
		p := name
		if dir != "" {
			p = dir + "/" + name
		}
		if r, ok := c.objects[p]; ok {
			out = append(out, Entry{Name: name, Record: r})
		} else {
			out = append(out, Entry{Name: name, Dir: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, true
}

// Len returns the number of objects.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.objects)
}

// subscriber is one Subscribe channel. When its buffer is full, events
// are dropped and an EventResync is owed: it is sent as soon as there is
// room, before any later event, so a subscriber never misses a change
// without being told.
type subscriber struct {
	ch     chan Event
	lagged bool          // events were dropped and the resync is not sent yet; under Cache.mu
	kick   chan struct{} // wakes resyncer
	done   chan struct{} // closed on unsubscribe
}

// Subscribe returns a channel of changes. A subscriber that does not keep
// up (1024 events behind) gets an EventResync in place of the events it
// missed; call the returned function to unsubscribe.
func (c *Cache) Subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, subscriberBuffer), kick: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	go c.resyncer(s)
	return s.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.unsubscribe(s)
	}
}

// unsubscribe closes s; callers hold mu.
func (c *Cache) unsubscribe(s *subscriber) {
	if _, ok := c.subs[s]; ok {
		delete(c.subs, s)
		close(s.done)
		close(s.ch)
	}
}

// resyncer sends the EventResync owed to a lagging subscriber once its
// buffer has room. The send happens under mu, so no event is published
// (and dropped) between the resync and the end of the lag.
func (c *Cache) resyncer(s *subscriber) {
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		}
		for sent := false; !sent; {
			c.mu.Lock()
			if _, ok := c.subs[s]; !ok {
				c.mu.Unlock()
				return
			}
			select {
			case s.ch <- Event{Type: EventResync}:
				s.lagged, sent = false, true
			default:
			}
			c.mu.Unlock()
			if !sent {
				select {
				case <-s.done:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}
}

func (c *Cache) run(ctx context.Context) {
	defer close(c.stopped)
	log := c.ix.log.With("part", "cache")
	for attempt := 0; ctx.Err() == nil; attempt++ {
		rev, err := c.relist(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("namespace list failed, retrying", "err", err)
				sleep(ctx, min(200*time.Millisecond<<min(attempt, 6), 10*time.Second))
			}
			continue
		}
		attempt = 0
		err = c.watch(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		c.ix.metrics.relists.Inc()
		log.Warn("namespace watch ended, listing again", "err", err, "revision", rev)
		sleep(ctx, 100*time.Millisecond)
	}
}

// relist loads every current record and replaces the cache, emitting the
// difference.
func (c *Cache) relist(ctx context.Context) (int64, error) {
	resp, err := c.ix.get(ctx, "list", objectsDir, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	fresh := map[string]Record{}
	for _, kv := range resp.Kvs {
		r, err := decodeRecord(kv.Value)
		if err != nil {
			c.ix.log.Warn("skipping undecodable record", "key", string(kv.Key), "err", err)
			continue
		}
		fresh[strings.TrimPrefix(string(kv.Key), objectsDir)] = r
	}
	c.mu.Lock()
	var events []Event
	for p, old := range c.objects {
		if _, ok := fresh[p]; !ok {
			c.remove(p)
			events = append(events, Event{Type: EventDelete, Path: p, Record: old})
		}
	}
	for p, r := range fresh {
		if old, ok := c.objects[p]; !ok || old.InfoHash != r.InfoHash {
			c.put(p, r)
			events = append(events, Event{Type: EventPut, Path: p, Record: r})
		}
	}
	c.rev = resp.Header.Revision
	c.publish(events)
	c.mu.Unlock()
	c.once.Do(func() { close(c.synced) })
	return resp.Header.Revision, nil
}

func (c *Cache) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	w := namespace.NewWatcher(c.ix.cli.Watcher, c.ix.cfg.Prefix)
	defer w.Close()
	for wr := range w.Watch(wctx, objectsDir, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV()) {
		if err := wr.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		var events []Event
		for _, ev := range wr.Events {
			p := strings.TrimPrefix(string(ev.Kv.Key), objectsDir)
			switch ev.Type {
			case clientv3.EventTypePut:
				r, err := decodeRecord(ev.Kv.Value)
				if err != nil {
					c.ix.log.Warn("skipping undecodable record", "path", p, "err", err)
					continue
				}
				c.put(p, r)
				events = append(events, Event{Type: EventPut, Path: p, Record: r})
			case clientv3.EventTypeDelete:
				if old, ok := c.objects[p]; ok {
					c.remove(p)
					events = append(events, Event{Type: EventDelete, Path: p, Record: old})
				}
			}
		}
		c.rev = wr.Header.Revision
		c.publish(events)
		c.mu.Unlock()
	}
	return errors.New("watch channel closed")
}

// put and remove keep dirs in step with objects; callers hold mu.
func (c *Cache) put(p string, r Record) {
	if _, ok := c.objects[p]; !ok {
		c.walk(p, 1)
	}
	c.objects[p] = r
}

func (c *Cache) remove(p string) {
	if _, ok := c.objects[p]; ok {
		delete(c.objects, p)
		c.walk(p, -1)
	}
}

// walk adds d to the object count of every directory entry on p's way.
func (c *Cache) walk(p string, d int) {
	dir := ""
	for {
		name, rest, more := strings.Cut(p, "/")
		children := c.dirs[dir]
		if children == nil {
			children = map[string]int{}
			c.dirs[dir] = children
		}
		children[name] += d
		if children[name] <= 0 {
			delete(children, name)
		}
		if !more {
			return
		}
		if dir == "" {
			dir = name
		} else {
			dir = dir + "/" + name
		}
		if d < 0 && children[name] == 0 {
			defer delete(c.dirs, dir) // emptied subdirectory
		}
		p = rest
	}
}

// publish hands events to every subscriber; callers hold mu. A full
// subscriber is marked lagged: it gets no more events until its resync
// is sent, which stands for everything it missed.
func (c *Cache) publish(events []Event) {
	for s := range c.subs {
		for _, ev := range events {
			if s.lagged {
				break
			}
			select {
			case s.ch <- ev:
			default:
				s.lagged = true
				c.ix.log.Warn("namespace subscriber fell behind; it will be told to resync", "buffer", subscriberBuffer)
				select {
				case s.kick <- struct{}{}:
				default:
				}
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
