package index

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Node is a live swarmfsd registration.
type Node struct {
	ID       string    `json:"id"`
	PeerAddr string    `json:"peer_addr"`
	Rack     string    `json:"rack,omitempty"`
	Zone     string    `json:"zone,omitempty"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started"`
}

// Registration keeps a node's key (and the objects it holds) alive under a
// lease. If the session expires (etcd unreachable for longer than the TTL)
// it registers again once etcd is back.
type Registration struct {
	ix   *Index
	node Node

	mu     sync.Mutex
	sess   *concurrency.Session
	held   map[string]bool
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// Register registers node and keeps the registration alive until Close.
func (ix *Index) Register(ctx context.Context, node Node) (*Registration, error) {
	if node.ID == "" || strings.Contains(node.ID, "/") {
		return nil, fmt.Errorf("index: register: bad node id %q", node.ID)
	}
	if node.Started.IsZero() {
		node.Started = time.Now().UTC()
	}
	r := &Registration{ix: ix, node: node, held: map[string]bool{}, done: make(chan struct{})}
	if err := r.establish(ctx); err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go r.keep()
	return r, nil
}

func (r *Registration) establish(ctx context.Context) error {
	sess, err := concurrency.NewSession(r.ix.cli, concurrency.WithTTL(int(r.ix.cfg.SessionTTL/time.Second)))
	if err != nil {
		return fmt.Errorf("%w: node session: %w", ErrUnavailable, err)
	}
	val, _ := json.Marshal(r.node)
	r.mu.Lock()
	held := make([]string, 0, len(r.held))
	for ih := range r.held {
		held = append(held, ih)
	}
	r.mu.Unlock()
	ops := []clientv3.Op{clientv3.OpPut(nodesDir+r.node.ID, string(val), clientv3.WithLease(sess.Lease()))}
	for _, ih := range held {
		ops = append(ops, clientv3.OpPut(holdersDir+ih+"/"+r.node.ID, r.node.PeerAddr, clientv3.WithLease(sess.Lease())))
	}
	if _, err := r.ix.txn(ctx, "register", nil, ops, nil); err != nil {
		sess.Close()
		return fmt.Errorf("index: register node %s: %w", r.node.ID, err)
	}
	r.mu.Lock()
	r.sess = sess
	r.mu.Unlock()
	return nil
}

func (r *Registration) keep() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		sess := r.sess
		r.mu.Unlock()
		select {
		case <-r.done:
			return
		case <-sess.Done():
		}
		r.ix.log.Warn("node registration lost, registering again", "node", r.node.ID)
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), r.ix.cfg.RequestTimeout)
			err := r.establish(ctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-r.done:
				return
			case <-time.After(min(time.Second<<min(attempt, 4), 15*time.Second)):
			}
		}
	}
}

// Hold records that this node holds (and seeds) infohash ih.
func (r *Registration) Hold(ctx context.Context, ih string) error {
	r.mu.Lock()
	r.held[ih] = true
	sess := r.sess
	r.mu.Unlock()
	err := r.ix.op(ctx, "hold", func(ctx context.Context) error {
		_, err := r.ix.kv.Put(ctx, holdersDir+ih+"/"+r.node.ID, r.node.PeerAddr, clientv3.WithLease(sess.Lease()))
		return err
	})
	if err != nil {
		return fmt.Errorf("index: hold %s: %w", ih, err)
	}
	return nil
}

// Close deletes the registration.
func (r *Registration) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	sess := r.sess
	r.mu.Unlock()
	r.wg.Wait()
	return sess.Close()
}

// Nodes lists live nodes.
func (ix *Index) Nodes(ctx context.Context) ([]Node, error) {
	resp, err := ix.get(ctx, "nodes", nodesDir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("index: list nodes: %w", err)
	}
	var out []Node
	for _, kv := range resp.Kvs {
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, fmt.Errorf("index: decode node %s: %w", kv.Key, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Holders returns the peer addresses of live nodes holding ih.
func (ix *Index) Holders(ctx context.Context, ih string) ([]string, error) {
	resp, err := ix.get(ctx, "holders", holdersDir+ih+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("index: holders of %s: %w", ih, err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Value))
	}
	return out, nil
}
