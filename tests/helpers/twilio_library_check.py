"""Drives the Twilio emulator with Twilio's own Python helper library
(Debian's python3-twilio), unchanged except for an HTTP client that sends
requests for *.twilio.com to the emulator instead. Every call is one that
stagehand's workers make; every expected error code is one they rely on.
Webhooks the emulator sends are received here and checked with the
library's own RequestValidator.

Usage: twilio_library_check.py BASE_URL   (credentials from TWILIO_* env)
Prints one line per check and exits 0 when all pass, 1 otherwise.
"""
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import PlaybackGrant, SyncGrant, VideoGrant
from twilio.request_validator import RequestValidator
from twilio.rest import Client

BASE = sys.argv[1].rstrip("/")
ACCOUNT = os.environ["TWILIO_ACCOUNT_SID"]
KEY = os.environ["TWILIO_API_KEY_SID"]
SECRET = os.environ["TWILIO_API_KEY_SECRET"]
AUTH_TOKEN = os.environ["TWILIO_AUTH_TOKEN"]

failures = []


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


class ToEmulator(TwilioHttpClient):
    """Sends https://{product}.twilio.com/... to the emulator, paths unchanged."""

    def request(self, method, url, *args, **kwargs):
        parts = urllib.parse.urlsplit(url)
        if parts.hostname and parts.hostname.endswith(".twilio.com"):
            url = BASE + parts.path + ("?" + parts.query if parts.query else "")
        return super().request(method, url, *args, **kwargs)


def error_code(call):
    """Runs call; returns (HTTP status, Twilio code) of the error it raised."""
    try:
        call()
    except TwilioRestException as e:
        return e.status, e.code
    return None, None


# --- webhook receiver --------------------------------------------------------

hooks = []
hooks_lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        with hooks_lock:
            hooks.append((self.path, params, self.headers.get("X-Twilio-Signature", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
HOOK_BASE = "http://127.0.0.1:%d" % server.server_address[1]


def wait_for_hooks(n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with hooks_lock:
            if len(hooks) >= n:
                return True
        time.sleep(0.05)
    return False


def simulate(path, **form):
    """POSTs to the emulator's own simulation API; returns (status, body)."""
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(BASE + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def token(identity, grant):
    t = AccessToken(ACCOUNT, KEY, SECRET, identity=identity, ttl=600)
    t.add_grant(grant)
    return t.to_jwt()


client = Client(KEY, SECRET, ACCOUNT, http_client=ToEmulator())
quote = urllib.parse.quote

# --- Video -------------------------------------------------------------------
room = client.video.v1.rooms.create(unique_name="library check", type="group",
                                    status_callback=HOOK_BASE + "/rooms-webhook",
                                    max_participants=50, empty_room_timeout=5,
                                    unused_room_timeout=5)
check("video: room created with an RM SID", room.sid.startswith("RM") and len(room.sid) == 34)
check("video: room fields", room.unique_name == "library check" and room.status == "in-progress"
      and room.type == "group" and room.max_participants == 50)
check("video: fetch by unique name", client.video.v1.rooms("library check").fetch().sid == room.sid)
check("video: 53113 when the unique name is in use",
      error_code(lambda: client.video.v1.rooms.create(unique_name="library check"))[1] == 53113)
check("video: 20404 for an unknown room",
      error_code(lambda: client.video.v1.rooms("RM" + "0" * 32).fetch()) == (404, 20404))
for i in range(3):
    client.video.v1.rooms.create(unique_name="paging %d" % i)
listed = client.video.v1.rooms.list(status="in-progress", page_size=2)
check("video: list follows meta.next_page_url", len(listed) == 4)

status, _ = simulate("/_emulator/rooms/%s/participants" % quote(room.unique_name),
                     Token=token("speaker-1", VideoGrant(room="library check")))
check("video: a participant joins with the library's access token", status == 201)
connected = client.video.v1.rooms(room.sid).participants.list(status="connected")
check("video: participants list", [p.identity for p in connected] == ["speaker-1"])
p = client.video.v1.rooms(room.sid).participants("speaker-1").update(status="disconnected")
check("video: participant disconnected by identity", p.status == "disconnected")

# --- Media v1 (Live) -----------------------------------------------------------
streamer = client.media.v1.player_streamer.create(video=True,
                                                  status_callback=HOOK_BASE + "/media-webhook")
check("media: PlayerStreamer created with a VJ SID", streamer.sid.startswith("VJ")
      and streamer.status == "created")
processor = client.media.v1.media_processor.create(
    extension="video-composer-v2",
    extension_context=json.dumps({"room": {"name": room.sid}, "outputs": [streamer.sid],
                                  "resolution": "1920x1080"}),
    status_callback=HOOK_BASE + "/media-webhook", max_duration=3600)
check("media: MediaProcessor started", processor.sid.startswith("ZX") and processor.status == "started")
check("media: PlayerStreamer started by it",
      client.media.v1.player_streamer(streamer.sid).fetch().status == "started")
grant = client.media.v1.player_streamer(streamer.sid).playback_grant().create(
    ttl=60, access_control_allow_origin="*")
check("media: PlaybackGrant", grant.grant.get("playerStreamerSid") == streamer.sid
      and "playbackUrl" in grant.grant)
status, _ = simulate("/_emulator/player-streamers/%s/players" % streamer.sid,
                     Token=token("viewer-1", PlaybackGrant(grant=grant.grant)))
check("media: a player connects with the library's PlaybackGrant", status == 201)
check("media: Ttl over 60 refused",
      error_code(lambda: client.media.v1.player_streamer(streamer.sid).playback_grant().create(ttl=61))[0] == 400)
ended = client.media.v1.media_processor(processor.sid).update(status="ended")
check("media: MediaProcessor ended", ended.status == "ended" and ended.ended_reason == "ended-via-api")
ended = client.media.v1.player_streamer(streamer.sid).update(status="ended")
check("media: PlayerStreamer ended", ended.status == "ended")
check("media: lists", len(client.media.v1.player_streamer.list(status="ended")) == 1
      and len(client.media.v1.media_processor.list()) == 1)

# --- Sync --------------------------------------------------------------------
service = client.sync.v1.services.create(friendly_name="library check", acl_enabled=True,
                                         webhook_url=HOOK_BASE + "/sync-webhook",
                                         reachability_webhooks_enabled=True,
                                         reachability_debouncing_enabled=True,
                                         reachability_debouncing_window=1000)
check("sync: service created", service.sid.startswith("IS") and service.acl_enabled is True)
svc = client.sync.v1.services(service.sid)
speakers = svc.sync_maps.create(unique_name="speakers")
check("sync: map created", speakers.sid.startswith("MP") and speakers.unique_name == "speakers")
check("sync: 54301 for a taken unique name",
      error_code(lambda: svc.sync_maps.create(unique_name="speakers")) == (409, 54301))
item = svc.sync_maps("speakers").sync_map_items.create(key="host", data={"host": True})
check("sync: item created", item.key == "host" and item.data == {"host": True})
check("sync: 54208 for an existing key",
      error_code(lambda: svc.sync_maps("speakers").sync_map_items.create(key="host", data={})) == (409, 54208))
updated = svc.sync_maps("speakers").sync_map_items("host").update(data={"host": True, "muted": False},
                                                                  if_match=item.revision)
check("sync: item updated with If-Match", updated.data == {"host": True, "muted": False}
      and updated.revision != item.revision)
check("sync: 54205 for a stale revision",
      error_code(lambda: svc.sync_maps("speakers").sync_map_items("host").update(
          data={}, if_match=item.revision)) == (412, 54205))
for i in range(3):
    svc.sync_maps("speakers").sync_map_items.create(key="speaker-%d" % i, data={})
check("sync: items listed across pages",
      len(svc.sync_maps("speakers").sync_map_items.list(page_size=2)) == 4)
svc.sync_maps("speakers").sync_map_items("speaker-0").delete()
check("sync: 20404 for a deleted item",
      error_code(lambda: svc.sync_maps("speakers").sync_map_items("speaker-0").fetch()) == (404, 20404))
doc = svc.documents.create(unique_name="stream", data={"viewer_count": 0})
check("sync: document created", doc.sid.startswith("ET") and doc.data == {"viewer_count": 0})
doc2 = svc.documents("stream").update(data={"viewer_count": 7}, if_match=doc.revision)
check("sync: document updated with If-Match", doc2.data == {"viewer_count": 7})
check("sync: 54103 for a stale document revision",
      error_code(lambda: svc.documents("stream").update(data={}, if_match=doc.revision)) == (412, 54103))
perm = svc.sync_maps("speakers").sync_map_permissions("viewer-1").update(read=True, write=False, manage=False)
check("sync: map permission", perm.read is True and perm.write is False)
perm = svc.documents("stream").document_permissions("viewer-1").update(read=True, write=False, manage=False)
check("sync: document permission", perm.identity == "viewer-1" and perm.read is True)
status, endpoint = simulate("/_emulator/sync/%s/endpoints" % service.sid,
                            Token=token("viewer-1", SyncGrant(service_sid=service.sid)))
check("sync: an endpoint connects with the library's SyncGrant", status == 201)
svc.documents("stream").delete()
check("sync: document deleted",
      error_code(lambda: svc.documents("stream").fetch()) == (404, 20404))

# --- webhooks, checked with the library's RequestValidator --------------------
client.video.v1.rooms(room.sid).update(status="completed")
# room-created, participant-connected, participant-disconnected, composer
# connected and disconnected, room-ended; 5 media events; endpoint_connected
check("webhooks: all arrived", wait_for_hooks(12))
validator = RequestValidator(AUTH_TOKEN)
with hooks_lock:
    received = list(hooks)
check("webhooks: every signature validates",
      all(validator.validate(HOOK_BASE + path, params, sig) for path, params, sig in received))
check("webhooks: a wrong token does not validate",
      not any(RequestValidator("wrong").validate(HOOK_BASE + path, params, sig)
              for path, params, sig in received))
events = [params.get("StatusCallbackEvent") or params.get("EventType") for _, params, _ in received]
for wanted in ("room-created", "participant-connected", "participant-disconnected", "room-ended",
               "player-streamer-created", "media-processor-started", "player-streamer-started",
               "media-processor-ended", "player-streamer-ended", "endpoint_connected"):
    check("webhooks: %s received" % wanted, wanted in events)

server.shutdown()
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
