"""One libtorrent-rasterbar client of the swarmfs distribution benchmark.

benchrun (tests/benchrun/dist_libtorrent.go) embeds this file and runs it
with Debian's /usr/bin/python3 (package python3-libtorrent), once per
client: every seed and leecher is its own process, as swarmfs nodes are.

  lt_node.py make --data FILE --piece-length N --tracker URL --out FILE.torrent
      creates a single-file, v1-only torrent of FILE with libtorrent and
      prints {"event": "torrent", "infohash": ..., "name": ..., "pieces": ...}.

  lt_node.py node --role seed|leech --dir DIR --port P --torrent FILE
                  [--upload BYTES/S] [--download BYTES/S]
      runs one client. The protocol is JSON lines, commands on stdin and
      events on stdout:
        -> {"event": "ready", "version": ..., "settings": {...}}  torrent
           checked (a seed holds every piece) and stopped, nothing announced
        <- {"cmd": "go"}      start: announce to the tracker, transfer
        -> {"event": "done", "pieces": N}  (leechers) every piece passed
           libtorrent's hash check; the client keeps seeding
        <- {"cmd": "stats"}   -> {"event": "stats", ...} payload counters
        <- {"cmd": "stop"}    -> {"event": "stats", ...}, then exits
      End of stdin counts as stop. Diagnostics go to stderr.

Completion is detected from torrent_finished_alert. libtorrent writes to a
pipe when an alert is posted (set_alert_fd) and the loop waits on that pipe
and stdin together, so a completion is reported as soon as libtorrent posts
it, without polling.
"""

import argparse
import json
import os
import select
import sys
import time

import libtorrent as lt

POLL_SECONDS = 0.02  # while waiting for the torrent check
STATUS_SECONDS = 1.0  # status lines on stderr


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def log(*args):
    print("%.3f" % time.monotonic(), *args, file=sys.stderr, flush=True)


def make(args):
    fs = lt.file_storage()
    lt.add_files(fs, args.data)
    if fs.num_files() != 1:
        raise SystemExit("make: %s is not a single file" % args.data)
    # v1 only: SHA-1 pieces and a 20-byte infohash, like swarmfs
    # (anacrolix/torrent) and what opentracker serves.
    ct = lt.create_torrent(fs, args.piece_length, lt.create_torrent.v1_only)
    ct.add_tracker(args.tracker)
    ct.set_creator("swarmfs benchrun, libtorrent %s" % lt.__version__)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(args.data)))
    with open(args.out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    ti = lt.torrent_info(args.out)
    emit("torrent", infohash=str(ti.info_hashes().v1), name=ti.name(),
         pieces=ti.num_pieces(), piece_length=ti.piece_length())


def node_settings(args):
    """The settings changed from libtorrent's defaults, and why."""
    return {
        # Every client listens on loopback only, on its own port.
        "listen_interfaces": "127.0.0.1:%d" % args.port,
        # Peers come from the tracker only.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Every peer is 127.0.0.1, on different ports.
        "allow_multiple_connections_per_ip": True,
        # TCP only, like swarmfs (anacrolix with uTP off).
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # The caps count the bytes written to and read from the sockets,
        # as swarmfs's shaped sockets do, not an estimate of IP headers.
        "rate_limit_ip_overhead": False,
        "upload_rate_limit": args.upload,
        "download_rate_limit": args.download,
        "alert_mask": lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification
        | lt.alert.category_t.tracker_notification,
    }


def counters(h):
    s = h.status()
    return {
        "uploaded": s.total_payload_upload,
        "downloaded": s.total_payload_download,
        "uploaded_wire": s.total_upload,
        "downloaded_wire": s.total_download,
        "pieces": s.num_pieces,
        "peers": s.num_peers,
        "state": str(s.state),
    }


class Events:
    """Waits on stdin (JSON-line commands) and on libtorrent's alert
    notification pipe at once, so that both are handled when they happen."""

    def __init__(self, ses):
        self.buf = b""
        self.eof = False
        self.alert_r, w = os.pipe()
        os.set_blocking(self.alert_r, False)
        os.set_blocking(w, False)  # libtorrent's network thread writes it
        self.alert_w = w
        # libtorrent writes a byte when its alert queue becomes non-empty.
        ses.set_alert_fd(w)

    def wait(self, timeout):
        """Returns the commands read, after waiting at most timeout seconds
        for a command or an alert."""
        r, _, _ = select.select([0, self.alert_r], [], [], timeout)
        if self.alert_r in r:
            try:
                while os.read(self.alert_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if 0 in r:
            chunk = os.read(0, 65536)
            if not chunk:
                self.eof = True
            self.buf += chunk
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                out.append(json.loads(line).get("cmd"))
        return out


def node(args):
    settings = node_settings(args)
    ses = lt.session(settings)
    # By default peers on loopback and local networks are in the local
    # peer class, which no rate limit applies to. Put every address in the
    # global class, the one upload_rate_limit and download_rate_limit set.
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)

    ti = lt.torrent_info(args.torrent)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = args.dir
    # Checked now (the seed's data verified before the clock starts), then
    # stopped without announcing until "go". Not auto-managed: no queueing.
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    atp.flags |= lt.torrent_flags.stop_when_ready
    h = ses.add_torrent(atp)

    deadline = time.monotonic() + args.check_timeout
    while True:
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                log("alert", type(a).__name__, a.message())
        s = h.status()
        if s.errc.value() != 0:
            raise SystemExit("torrent error: %s" % s.errc.message())
        checking = s.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        if s.paused and not checking:
            break
        if time.monotonic() > deadline:
            raise SystemExit("torrent not checked after %ds (state %s)" % (args.check_timeout, s.state))
        time.sleep(POLL_SECONDS)
    if args.role == "seed" and s.num_pieces != ti.num_pieces():
        raise SystemExit("seed holds %d of %d pieces: is the data in %s?" % (s.num_pieces, ti.num_pieces(), args.dir))

    shown = dict(settings)
    shown["alert_mask"] = int(shown["alert_mask"])
    emit("ready", version=lt.__version__, pieces=s.num_pieces, settings=shown)

    ev = Events(ses)
    started = done = False
    next_status = 0.0
    while not ev.eof:
        for cmd in ev.wait(STATUS_SECONDS):
            if cmd == "go" and not started:
                started = True
                h.resume()
                log("go")
                next_status = time.monotonic() + STATUS_SECONDS
            elif cmd == "stats":
                emit("stats", **counters(h))
            elif cmd == "stop":
                ev.eof = True
            else:
                log("unknown command", cmd)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_finished_alert):
                if started and args.role == "leech" and not done:
                    done = True
                    emit("done", pieces=h.status().num_pieces)
            elif a.category() & (lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification):
                log("alert", type(a).__name__, a.message())
        if started and time.monotonic() >= next_status:
            next_status += STATUS_SECONDS
            s = h.status()
            log("status peers=%d seeds=%d pieces=%d up=%d down=%d up_total=%d down_total=%d" % (
                s.num_peers, s.num_seeds, s.num_pieces, s.upload_payload_rate, s.download_payload_rate,
                s.total_payload_upload, s.total_payload_download))
            # Backstop in case an alert was lost (queue overflow).
            if args.role == "leech" and not done and s.is_seeding and s.num_pieces == ti.num_pieces():
                done = True
                emit("done", pieces=s.num_pieces)
    emit("stats", **counters(h))
    # A clean shutdown: libtorrent flushes its disk jobs before the session
    # goes away, so the files are complete when the process exits.
    ses.pause()
    del h
    del ses
    log("stopped")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("make")
    m.add_argument("--data", required=True)
    m.add_argument("--piece-length", type=int, required=True)
    m.add_argument("--tracker", required=True)
    m.add_argument("--out", required=True)
    n = sub.add_parser("node")
    n.add_argument("--role", choices=["seed", "leech"], required=True)
    n.add_argument("--dir", required=True)
    n.add_argument("--port", type=int, required=True)
    n.add_argument("--torrent", required=True)
    n.add_argument("--upload", type=int, default=0)
    n.add_argument("--download", type=int, default=0)
    n.add_argument("--check-timeout", type=int, default=600)
    args = ap.parse_args()
    try:
        make(args) if args.mode == "make" else node(args)
    except SystemExit as e:
        if isinstance(e.code, str):
            emit("error", message=e.code)
            sys.exit(1)
        raise
    except Exception as e:  # reported to benchrun, which logs and fails
        emit("error", message="%s: %s" % (type(e).__name__, e))
        raise


if __name__ == "__main__":
    main()
