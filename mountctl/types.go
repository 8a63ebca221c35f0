package mountctl

import "time"

// State is where an object stands on this node.
type State string

// Object states.
const (
	// StateAbsent: the object is in the index but this node holds none of
	// it.
	StateAbsent State = "absent"
	// StateDownloading: this node holds the object and fetches its missing
	// pieces (and seeds the ones it has).
	StateDownloading State = "downloading"
	// StateComplete: every piece is here and verified; the node seeds it.
	StateComplete State = "complete"
)

// Source says where an object version came from.
type Source struct {
	// Kind is "url" (an HTTP origin) or "file" (a published local file).
	Kind         string `json:"kind"`
	URL          string `json:"url,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// File is the published file's path on the node that published it.
	File string `json:"file,omitempty"`
	// Node converted or published the object.
	Node string `json:"node,omitempty"`
}

// Object is an object of the namespace as this node sees it: its index
// record and its local transfer figures. Byte counters cover the life of
// the daemon process.
type Object struct {
	// Path is the object's name in the namespace; empty for an object this
	// node holds that no path points to (an old version, or one joined
	// outside the index).
	Path        string    `json:"path,omitempty"`
	InfoHash    string    `json:"infohash"`
	Size        int64     `json:"size"`
	PieceLength int64     `json:"piece_length,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	Source      Source    `json:"source,omitzero"`

	State State `json:"state"`
	// BytesCompleted counts bytes of verified pieces here.
	BytesCompleted int64 `json:"bytes_completed"`
	// Progress is BytesCompleted/Size, from 0 to 1 (1 for an empty object
	// held here).
	Progress float64 `json:"progress"`
	// Peers is the number of active peer connections, Seeders those of
	// them that have every piece.
	Peers   int `json:"peers"`
	Seeders int `json:"seeders"`
	// PeerBytes and OriginBytes are the useful bytes this node got from
	// peers and from the origin (conversion or stall fallback); SentBytes
	// the bytes it uploaded.
	PeerBytes   int64 `json:"peer_bytes"`
	OriginBytes int64 `json:"origin_bytes"`
	SentBytes   int64 `json:"sent_bytes"`
	// Pinned reports whether the object is held in RAM.
	Pinned bool `json:"pinned"`
}

// AddRequest adds an HTTP origin object: it is converted once in the
// cluster (maybe here) and downloaded and seeded here.
type AddRequest struct {
	// URL is the origin object, http or https (required).
	URL string `json:"url"`
	// Path names the object in the namespace; default: the URL's path.
	Path string `json:"path,omitempty"`
	// Wait makes the call return only when this node's copy is complete.
	Wait bool `json:"wait,omitempty"`
}

// PublishRequest publishes a file on the node's filesystem.
type PublishRequest struct {
	// File is an absolute path on the node (required). The daemon reads it
	// with its own permissions.
	File string `json:"file"`
	// Path names the object in the namespace (required).
	Path string `json:"path"`
}

// ListRequest filters a listing.
type ListRequest struct {
	// Prefix keeps objects whose path is Prefix or lies below the
	// directory Prefix ("images" matches "images/a" but not "imagesX").
	Prefix string `json:"prefix,omitempty"`
	// Local keeps only objects this node holds.
	Local bool `json:"local,omitempty"`
}

// ObjectList is the answer to a listing, sorted by path (objects without a
// path last, by infohash).
type ObjectList struct {
	Objects []Object `json:"objects"`
}

// WarmRequest asks for a full download now.
type WarmRequest struct {
	// Wait makes the call return only when the copy is complete.
	Wait bool `json:"wait,omitempty"`
}

// DeleteRequest removes a path and all its versions from the index.
type DeleteRequest struct {
	// Confirm must repeat the path: a delete is cluster-wide.
	Confirm string `json:"confirm"`
	// Evict also drops this node's copy. Copies on other nodes stay until
	// they are evicted there.
	Evict bool `json:"evict,omitempty"`
}

// DeleteResult reports a delete.
type DeleteResult struct {
	Path     string `json:"path"`
	InfoHash string `json:"infohash"`
	// Evicted reports whether this node's copy was dropped.
	Evicted bool `json:"evicted"`
}

// Disk is the disk use of the node's data dir.
type Disk struct {
	DataDir string `json:"data_dir"`
	// UsedBytes is the space object data takes (allocated blocks).
	UsedBytes int64 `json:"used_bytes"`
	// TotalBytes and FreeBytes describe the file system holding DataDir
	// (free for unprivileged users).
	TotalBytes uint64 `json:"total_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
}

// Rates are transfer rates over the last few seconds, in bytes per second.
type Rates struct {
	PeerBytesPerSec   float64 `json:"peer_bytes_per_sec"`
	OriginBytesPerSec float64 `json:"origin_bytes_per_sec"`
	SentBytesPerSec   float64 `json:"sent_bytes_per_sec"`
}

// Totals are transfer counters over the life of the daemon process.
type Totals struct {
	PeerBytes       int64 `json:"peer_bytes"`
	OriginBytes     int64 `json:"origin_bytes"`
	SentBytes       int64 `json:"sent_bytes"`
	PiecesVerified  int64 `json:"pieces_verified"`
	PiecesFailed    int64 `json:"pieces_failed"`
	OriginFallbacks int64 `json:"origin_fallbacks"`
}

// EtcdHealth is the index backend's state as this node sees it.
type EtcdHealth struct {
	Endpoints []string `json:"endpoints"`
	Healthy   bool     `json:"healthy"`
	Error     string   `json:"error,omitempty"`
}

// NodeStatus describes the local node.
type NodeStatus struct {
	ID            string    `json:"id"`
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	PeerAddr      string    `json:"peer_addr"`
	Rack          string    `json:"rack,omitempty"`
	Zone          string    `json:"zone,omitempty"`

	Objects         int `json:"objects"`
	ObjectsComplete int `json:"objects_complete"`
	Peers           int `json:"peers"`

	Rates  Rates      `json:"rates"`
	Totals Totals     `json:"totals"`
	Disk   Disk       `json:"disk"`
	Etcd   EtcdHealth `json:"etcd"`
	// Trackers are the configured announce URLs.
	Trackers []string `json:"trackers,omitempty"`
	// TrackerHealth is the answer of each tracker's /healthz.
	TrackerHealth []TrackerHealth `json:"tracker_health,omitempty"`
}

// TrackerHealth is one tracker replica's health as this node sees it.
type TrackerHealth struct {
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
}

// Node is a member of the cluster.
type Node struct {
	ID       string    `json:"id"`
	PeerAddr string    `json:"peer_addr"`
	Rack     string    `json:"rack,omitempty"`
	Zone     string    `json:"zone,omitempty"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	// Live reports whether the node's leased registration is current.
	// The registry only lists live nodes, so this is true unless a
	// Controller knows of nodes it cannot reach.
	Live bool `json:"live"`
	// Self marks the node that answered.
	Self bool `json:"self"`
}

// NodeList is the answer to a cluster listing, sorted by zone, rack and id.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}
