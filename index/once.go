package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ConvertFunc converts a source on this node. It returns the record to
// publish (Path and Source are filled in by ConvertOnce) and the info
// bytes. ctx is cancelled if this node loses the election (its session
// expired), so that two nodes never keep converting at once for long.
type ConvertFunc func(ctx context.Context) (Record, []byte, error)

// ErrSessionLost means this node's etcd session expired while it was the
// converter.
var ErrSessionLost = errors.New("index: conversion session lost")

// ConvertOnce returns the record of src at path, converting it on this node
// only if no node has and this node wins the election for src. All other
// callers, on any node, wait for the winner's record. If the winner dies,
// its session expires after SessionTTL and another caller takes over.
// converted reports whether this node ran convert.
func (ix *Index) ConvertOnce(ctx context.Context, path string, src Source, nodeID string, convert ConvertFunc) (rec Record, converted bool, err error) {
	if err := ValidatePath(path); err != nil {
		return Record{}, false, err
	}
	start := time.Now()
	log := ix.log.With("path", path, "url", src.URL)
	for attempt := 0; ; attempt++ {
		rec, converted, err = ix.convertOnce(ctx, path, src, nodeID, convert)
		if err == nil || !errors.Is(err, ErrSessionLost) || attempt >= 3 || ctx.Err() != nil {
			if err == nil {
				log.Info("object ready", "infohash", rec.InfoHash, "converted_here", converted, "duration", time.Since(start))
			}
			return rec, converted, err
		}
		log.Warn("conversion session lost, campaigning again", "err", err)
	}
}

func (ix *Index) convertOnce(ctx context.Context, path string, src Source, nodeID string, convert ConvertFunc) (Record, bool, error) {
	found := func(rec Record) (Record, bool, error) {
		rec, err := ix.alias(ctx, rec, path)
		return rec, false, err
	}
	rec, rev, err := ix.LookupSource(ctx, src)
	if err == nil {
		return found(rec)
	}
	if !errors.Is(err, ErrNotFound) {
		return Record{}, false, err
	}
	sess, err := concurrency.NewSession(ix.cli, concurrency.WithTTL(int(ix.cfg.SessionTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return Record{}, false, fmt.Errorf("%w: conversion session: %w", ErrUnavailable, err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, ix.cfg.Prefix+convertDir+src.Key())

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	won := make(chan error, 1)
	go func() { won <- el.Campaign(wctx, nodeID) }()
	wch := ix.watcher.Watch(wctx, sourcesDir+src.Key(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return Record{}, false, fmt.Errorf("index: add %s: %w", src.URL, ctx.Err())
		case <-sess.Done():
			return Record{}, false, ErrSessionLost
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				// Watch broke (compaction, leader loss): look again, then watch anew.
				rec, rev, err = ix.LookupSource(ctx, src)
				if err == nil {
					return found(rec)
				}
				if !errors.Is(err, ErrNotFound) {
					return Record{}, false, err
				}
				wch = ix.watcher.Watch(wctx, sourcesDir+src.Key(), clientv3.WithRev(rev+1))
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					rec, err := decodeRecord(ev.Kv.Value)
					if err != nil {
						return Record{}, false, err
					}
					return found(rec)
				}
			}
		case err := <-won:
			if err != nil {
				if errors.Is(err, context.Canceled) && ctx.Err() == nil {
					return Record{}, false, ErrSessionLost
				}
				return Record{}, false, fmt.Errorf("%w: campaign for %s: %w", ErrUnavailable, src.URL, err)
			}
			return ix.convertAsLeader(ctx, sess, el, path, src, nodeID, convert)
		}
	}
}

func (ix *Index) convertAsLeader(ctx context.Context, sess *concurrency.Session, el *concurrency.Election, path string, src Source, nodeID string, convert ConvertFunc) (Record, bool, error) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ix.cfg.RequestTimeout)
		defer cancel()
		el.Resign(rctx)
	}()
	// A previous leader may have published just before it died.
	if rec, _, err := ix.LookupSource(ctx, src); err == nil {
		rec, err = ix.alias(ctx, rec, path)
		return rec, false, err
	}
	ix.log.Info("converting (elected)", "path", path, "url", src.URL)
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-sess.Done():
			cancel(ErrSessionLost)
		case <-cctx.Done():
		}
	}()
	rec, info, err := convert(cctx)
	if err != nil {
		if errors.Is(context.Cause(cctx), ErrSessionLost) {
			return Record{}, false, fmt.Errorf("%w: %w", ErrSessionLost, err)
		}
		return Record{}, false, err
	}
	rec.Path = path
	if rec.Source.Kind == "" {
		rec.Source = src
	}
	rec.Source.Node = nodeID
	pub, err := ix.Publish(ctx, rec, info)
	if errors.Is(err, ErrExists) {
		return pub, true, nil
	}
	return pub, true, err
}

// alias makes path point at rec's version if rec was published under
// another path (the same source added under two names).
func (ix *Index) alias(ctx context.Context, rec Record, path string) (Record, error) {
	if rec.Path == path {
		return rec, nil
	}
	info, err := ix.Info(ctx, rec.InfoHash)
	if err != nil {
		return Record{}, err
	}
	rec.Path = path
	pub, err := ix.Publish(ctx, rec, info)
	if errors.Is(err, ErrExists) {
		return pub, nil
	}
	return pub, err
}
