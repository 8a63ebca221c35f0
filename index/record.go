package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Key layout under the prefix.
const (
	objectsDir  = "objects/"  // objects/<path> → current Record
	versionsDir = "versions/" // versions/<path>/<infohash> → Record (immutable)
	infoDir     = "info/"     // info/<infohash> → bencoded info
	sourcesDir  = "sources/"  // sources/<source key> → Record converted from that source
	convertDir  = "convert/"  // convert/<source key> → election
	nodesDir    = "nodes/"    // nodes/<id> → Node (leased)
	holdersDir  = "holders/"  // holders/<infohash>/<node id> → peer address (leased)
)

// SourceKind says where an object came from.
type SourceKind string

// Source kinds.
const (
	SourceURL  SourceKind = "url"
	SourceFile SourceKind = "file"
)

// Source is the origin of an object version.
type Source struct {
	Kind SourceKind `json:"kind"`
	// URL, ETag, LastModified and ContentLength describe an HTTP origin.
	URL           string `json:"url,omitempty"`
	ETag          string `json:"etag,omitempty"`
	LastModified  string `json:"last_modified,omitempty"`
	ContentLength int64  `json:"content_length,omitempty"`
	// File is the published file's path on the publishing node.
	File string `json:"file,omitempty"`
	// Node is the node that converted or published the object.
	Node string `json:"node,omitempty"`
}

// Key identifies a source version: the URL with its validators. Two adds of
// the same URL and version share a key; a new ETag gives a new key.
func (s Source) Key() string {
	h := sha256.Sum256([]byte(strings.Join([]string{s.URL, s.ETag, s.LastModified, fmt.Sprint(s.ContentLength)}, "\x00")))
	return hex.EncodeToString(h[:16])
}

// Record is one version of a named object. Records are immutable; a path
// points at its newest version.
type Record struct {
	Path        string    `json:"path"`
	InfoHash    string    `json:"infohash"` // 40 hex digits
	Size        int64     `json:"size"`
	PieceLength int64     `json:"piece_length"`
	Created     time.Time `json:"created"`
	Source      Source    `json:"source"`
}

func (r Record) validate() error {
	if err := ValidatePath(r.Path); err != nil {
		return err
	}
	if b, err := hex.DecodeString(r.InfoHash); err != nil || len(b) != 20 {
		return fmt.Errorf("index: record %s: infohash %q is not 40 hex digits", r.Path, r.InfoHash)
	}
	if r.Size < 0 || r.PieceLength <= 0 {
		return fmt.Errorf("index: record %s: size %d, piece length %d", r.Path, r.Size, r.PieceLength)
	}
	return nil
}

func decodeRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("index: decode record: %w", err)
	}
	return r, nil
}

// Publish stores info and makes rec the current version of rec.Path, in one
// transaction. It fails with ErrExists (returning the stored record) if that
// version is already there, and with ErrConflict if the path clashes with
// the tree.
func (ix *Index) Publish(ctx context.Context, rec Record, info []byte) (Record, error) {
	rec.InfoHash = strings.ToLower(rec.InfoHash)
	if rec.Created.IsZero() {
		rec.Created = time.Now().UTC()
	}
	if err := rec.validate(); err != nil {
		return Record{}, err
	}
	if len(info) == 0 {
		return Record{}, fmt.Errorf("index: publish %s: empty info", rec.Path)
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return Record{}, fmt.Errorf("index: encode record: %w", err)
	}
	vkey := versionsDir + rec.Path + "/" + rec.InfoHash
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(vkey), "=", 0),
		// No object below this path (it would be a directory).
		clientv3.Compare(clientv3.CreateRevision(objectsDir+rec.Path+"/").WithPrefix(), "=", 0),
	}
	var ancestors []string
	for i := range rec.Path {
		if rec.Path[i] == '/' {
			a := rec.Path[:i]
			ancestors = append(ancestors, a)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(objectsDir+a), "=", 0))
		}
	}
	then := []clientv3.Op{
		clientv3.OpPut(infoDir+rec.InfoHash, string(info)),
		clientv3.OpPut(vkey, string(val)),
		clientv3.OpPut(objectsDir+rec.Path, string(val)),
	}
	if rec.Source.Kind == SourceURL {
		then = append(then, clientv3.OpPut(sourcesDir+rec.Source.Key(), string(val)))
	}
	els := []clientv3.Op{clientv3.OpGet(vkey), clientv3.OpGet(objectsDir+rec.Path+"/", clientv3.WithPrefix(), clientv3.WithLimit(1))}
	for _, a := range ancestors {
		els = append(els, clientv3.OpGet(objectsDir+a))
	}
	resp, err := ix.txn(ctx, "publish", cmps, then, els)
	if err != nil {
		return Record{}, fmt.Errorf("index: publish %s: %w", rec.Path, err)
	}
	if resp.Succeeded {
		ix.log.Info("published", "path", rec.Path, "infohash", rec.InfoHash, "size", rec.Size)
		return rec, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		old, err := decodeRecord(kvs[0].Value)
		if err != nil {
			return Record{}, err
		}
		return old, fmt.Errorf("%w: %s version %s", ErrExists, rec.Path, rec.InfoHash)
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		return Record{}, fmt.Errorf("%w: %s is a directory (holds %s)", ErrConflict, rec.Path, strings.TrimPrefix(string(kvs[0].Key), objectsDir))
	}
	for i, a := range ancestors {
		if len(resp.Responses[2+i].GetResponseRange().Kvs) > 0 {
			return Record{}, fmt.Errorf("%w: %s is an object, so %s cannot be below it", ErrConflict, a, rec.Path)
		}
	}
	return Record{}, fmt.Errorf("index: publish %s: transaction failed", rec.Path)
}

// Get returns the current record of path.
func (ix *Index) Get(ctx context.Context, path string) (Record, error) {
	if err := ValidatePath(path); err != nil {
		return Record{}, err
	}
	resp, err := ix.get(ctx, "get", objectsDir+path)
	if err != nil {
		return Record{}, fmt.Errorf("index: get %s: %w", path, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	return decodeRecord(resp.Kvs[0].Value)
}

// Versions returns every stored version of path, oldest first.
func (ix *Index) Versions(ctx context.Context, path string) ([]Record, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	pfx := versionsDir + path + "/"
	resp, err := ix.get(ctx, "versions", pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("index: versions of %s: %w", path, err)
	}
	var out []Record
	for _, kv := range resp.Kvs {
		if strings.Contains(strings.TrimPrefix(string(kv.Key), pfx), "/") {
			continue // a version of a path below this one
		}
		r, err := decodeRecord(kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Info returns the bencoded info of an infohash (hex).
func (ix *Index) Info(ctx context.Context, infoHash string) ([]byte, error) {
	resp, err := ix.get(ctx, "info", infoDir+strings.ToLower(infoHash))
	if err != nil {
		return nil, fmt.Errorf("index: info %s: %w", infoHash, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: info %s", ErrNotFound, infoHash)
	}
	return resp.Kvs[0].Value, nil
}

// LookupSource returns the record converted from src (same URL and
// validators), and the etcd revision the answer is valid at.
func (ix *Index) LookupSource(ctx context.Context, src Source) (Record, int64, error) {
	resp, err := ix.get(ctx, "lookup_source", sourcesDir+src.Key())
	if err != nil {
		return Record{}, 0, fmt.Errorf("index: lookup %s: %w", src.URL, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, resp.Header.Revision, fmt.Errorf("%w: source %s", ErrNotFound, src.URL)
	}
	r, err := decodeRecord(resp.Kvs[0].Value)
	return r, resp.Header.Revision, err
}

// Delete removes path and all its versions from the index. Data already
// on nodes stays until they evict it. It reads the path's keys and deletes
// them in one transaction that fails if any of them changed in between
// (then it reads again; three tries).
func (ix *Index) Delete(ctx context.Context, path string) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	vpfx := versionsDir + path + "/"
	for range 3 {
		snap, err := ix.txn(ctx, "delete_read", nil, []clientv3.Op{
			clientv3.OpGet(objectsDir + path),
			clientv3.OpGet(vpfx, clientv3.WithPrefix()),
		}, nil)
		if err != nil {
			return fmt.Errorf("index: delete %s: %w", path, err)
		}
		cur := snap.Responses[0].GetResponseRange().Kvs
		if len(cur) == 0 {
			return fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		keys := map[string]bool{objectsDir + path: true}
		versions := 0
		for _, kv := range append(cur, snap.Responses[1].GetResponseRange().Kvs...) {
			k := string(kv.Key)
			if strings.HasPrefix(k, vpfx) && strings.Contains(strings.TrimPrefix(k, vpfx), "/") {
				continue // a version of a path below this one
			}
			r, err := decodeRecord(kv.Value)
			if err != nil {
				return err
			}
			if k != objectsDir+path {
				versions++
			}
			keys[vpfx+r.InfoHash] = true
			if r.Source.Kind == SourceURL {
				keys[sourcesDir+r.Source.Key()] = true
			}
		}
		rev := snap.Header.Revision
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(objectsDir+path), "=", cur[0].ModRevision),
			clientv3.Compare(clientv3.ModRevision(vpfx).WithPrefix(), "<", rev+1),
		}
		var ops []clientv3.Op
		for k := range keys {
			ops = append(ops, clientv3.OpDelete(k))
		}
		resp, err := ix.txn(ctx, "delete", cmps, ops, nil)
		if err != nil {
			return fmt.Errorf("index: delete %s: %w", path, err)
		}
		if resp.Succeeded {
			ix.log.Info("deleted", "path", path, "versions", versions)
			return nil
		}
	}
	return fmt.Errorf("%w: %s kept changing while being deleted", ErrConflict, path)
}
