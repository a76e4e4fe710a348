"""Plays the reference app's story against a running stack (`make run`)
and prints what clients would see in Sync after each step.

The clients are simulated: HTTP calls to the ingress, as the web and iOS
apps make them, and the Twilio emulator's own API for what Twilio's SDKs
would do (a participant connecting to the room, a player connecting with
its playback grant, a Sync client connecting and going away).

Usage: python3 tools/demo.py   (INGRESS_URL, EMULATOR_URL, PASSCODE and
HOST_GRACE_S may be set; the defaults are those of `make run`)
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

INGRESS = os.environ.get("INGRESS_URL", "http://127.0.0.1:8080")
EMULATOR = os.environ.get("EMULATOR_URL", "http://127.0.0.1:8090")
PASSCODE = os.environ.get("PASSCODE", "123456")
HOST_GRACE_S = int(os.environ.get("HOST_GRACE_S", "30"))
STREAM = "demo-%d" % int(time.time())


def call(url, form=None, json_body=None, headers=None):
    data, hdrs = None, dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data, headers=hdrs, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else {}
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body else {}


def api(path, **body):
    status, answer = call(INGRESS + path, json_body=body, headers={"Authorization": PASSCODE})
    if status >= 300:
        sys.exit("%s answered %d: %s" % (path, status, json.dumps(answer)))
    return answer


def grants(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["grants"]


def emulator(path, **form):
    status, answer = call(EMULATOR + path, form=form if form or path.endswith(("leave", "disconnect")) else None)
    if status >= 300:
        sys.exit("emulator %s answered %d: %s" % (path, status, json.dumps(answer)))
    return answer


def sync_state():
    state = emulator("/_emulator/state")
    for service in state["sync_services"]:
        if service["friendly_name"] == "Live Video Stream " + STREAM:
            return service
    return None


def show(step):
    time.sleep(1.5)  # the pipeline is asynchronous: let the workers catch up
    print("\n== " + step)
    service = sync_state()
    if not service:
        print("   (the stream's Sync service is gone)")
        return
    for m in service["maps"]:
        print("   map %-13s %s" % (m["unique_name"], json.dumps(m["items"], sort_keys=True)))
    for d in service["documents"]:
        print("   doc %-13s %s" % (d["unique_name"], json.dumps(d["data"], sort_keys=True)))


def join_viewer(identity):
    """join-stream-as-viewer, the player connects, viewer-connected-to-player."""
    answer = api("/join-stream-as-viewer", user_identity=identity, stream_name=STREAM)
    player = grants(answer["token"])["player"]
    emulator("/_emulator/player-streamers/%s/players" % player["playerStreamerSid"], Token=answer["token"])
    api("/viewer-connected-to-player", user_identity=identity, stream_name=STREAM)
    return answer["token"]


def join_room(identity, token):
    emulator("/_emulator/rooms/%s/participants" % urllib.parse.quote(STREAM, safe=""), Token=token)


def leave_room(identity):
    emulator("/_emulator/rooms/%s/participants/%s/leave" % (urllib.parse.quote(STREAM, safe=""),
                                                           urllib.parse.quote(identity, safe="")))


def main():
    print("stream %s on %s (emulator %s)" % (STREAM, INGRESS, EMULATOR))
    host = api("/create-stream", user_identity="alice", stream_name=STREAM)
    if "token" not in host:
        sys.exit("the stream was not ready in time: %s" % json.dumps(host))
    join_room("alice", host["token"])
    show("alice (the host) created the stream and is on stage")

    tokens = {name: join_viewer(name) for name in ("bob", "carol", "dave")}
    show("bob, carol and dave joined as viewers")

    api("/raise-hand", user_identity="carol", stream_name=STREAM, hand_raised=True)
    show("carol raised her hand")

    api("/send-speaker-invite", user_identity="carol", stream_name=STREAM)
    show("the host invited carol (her document says speaker_invite: true)")

    carol = api("/join-stream-as-speaker", user_identity="carol", stream_name=STREAM)
    join_room("carol", carol["token"])
    show("carol accepted: she is a speaker, off the viewers and the raised hands")

    mute = {"message_type": "mute", "to_participant_identity": "carol"}
    print("\n== the host muted carol: this goes over the room's data track, never through the backend:")
    print("   " + json.dumps(mute) + "  (UTF-8 JSON, sent as binary)")

    api("/remove-speaker", user_identity="carol", stream_name=STREAM)
    time.sleep(1)
    tokens["carol"] = join_viewer("carol")  # her client rejoins as a viewer, as the reference's does
    show("the host moved carol back to the viewers")

    dave = api("/join-stream-as-speaker", user_identity="dave", stream_name=STREAM)
    join_room("dave", dave["token"])
    show("dave joined the stage")
    leave_room("dave")
    show("dave left the stage by choice")

    service = grants(tokens["bob"])["data_sync"]["service_sid"]
    endpoint = emulator("/_emulator/sync/%s/endpoints" % service, Token=tokens["bob"])["endpoint_id"]
    emulator("/_emulator/sync/%s/endpoints/%s/disconnect" % (service, endpoint))
    print("\n.. bob closed the app; Sync reports it after its debouncing window")
    time.sleep(6)
    show("bob is gone (his Sync endpoint disconnected)")

    leave_room("alice")
    print("\n.. the host left; the stream ends if she is not back within %d s" % HOST_GRACE_S)
    time.sleep(HOST_GRACE_S + 3)
    show("the host did not come back: the stream ended for everyone")
    rooms = [r for r in emulator("/_emulator/state")["rooms"] if r["unique_name"] == STREAM]
    print("   room %s" % rooms[-1]["status"] if rooms else "   no room")


if __name__ == "__main__":
    main()
