"""Incoming whatsmeow messages and the host's request answers, driven with real neonize
protobuf objects (Message, MessageInfo, GroupInfo, IsOnWhatsAppResponse) at the library
boundary (issue 12)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

pytest.importorskip("neonize")

from neonize.proto import Neonize_pb2 as pb
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from waz_actors.drivers.base import IncomingMessage, RequestDone
from waz_actors.drivers.host.queries import answer
from waz_actors.drivers.whatsmeow_events import from_wire, map_event, to_wire
from waz_actors.drivers.whatsmeow_inbound import ref_bytes

ME = pb.JID(User="4915100000000", Server="s.whatsapp.net")
ALICE = pb.JID(User="5511988887777", Server="s.whatsapp.net", Device=3)
GROUP = pb.JID(User="120363012345678901", Server="g.us")


def event(
    content: e2e.Message,
    *,
    chat: pb.JID = ALICE,
    sender: pb.JID = ALICE,
    from_me: bool = False,
    wa_id: str = "3EB0C0FFEE",
    ts: int = 1_760_000_000,
) -> pb.Message:
    source = pb.MessageSource(
        Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=chat.Server == "g.us"
    )
    info = pb.MessageInfo(MessageSource=source, ID=wa_id, Timestamp=ts, Type="text")
    return pb.Message(Info=info, Message=content)


def test_text_from_a_person() -> None:
    [ev] = map_event(event(e2e.Message(conversation="hello")))
    assert ev == IncomingMessage(
        wa_id="3EB0C0FFEE",
        chat="5511988887777@s.whatsapp.net",
        sender="5511988887777@s.whatsapp.net",  # the device suffix dropped
        time=1_760_000_000.0,
        text="hello",
    )
    extended = e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="a link"))
    [ev] = map_event(event(extended, ts=1_760_000_000_123))
    assert ev.text == "a link" and ev.time == pytest.approx(1_760_000_000.123)


def test_group_message_and_media() -> None:
    image = e2e.ImageMessage(
        mimetype="image/jpeg",
        fileLength=12345,
        caption="look",
        mediaKey=b"k" * 32,
        directPath="/v/t62/abc",
        JPEGThumbnail=b"t" * 500,
    )
    [ev] = map_event(event(e2e.Message(imageMessage=image), chat=GROUP))
    assert isinstance(ev, IncomingMessage)
    assert ev.chat == "120363012345678901@g.us" and ev.sender == "5511988887777@s.whatsapp.net"
    assert ev.text is None and ev.media is not None and ev.media_data is None
    assert {k: v for k, v in ev.media.items() if k != "ref"} == {
        "kind": "image",
        "mime": "image/jpeg",
        "size": 12345,
        "caption": "look",
    }
    # the reference is what download_any needs: the media part, without the thumbnail
    kept = e2e.Message.FromString(ref_bytes(dict(ev.media)))
    assert kept.imageMessage.directPath == "/v/t62/abc" and not kept.imageMessage.JPEGThumbnail
    assert not kept.HasField("conversation")
    doc = e2e.DocumentMessage(mimetype="application/pdf", fileLength=9, fileName="a.pdf")
    [ev] = map_event(event(e2e.Message(documentMessage=doc)))
    assert ev.media is not None and ev.media["filename"] == "a.pdf"
    # survives the host -> daemon wire
    assert from_wire(to_wire(ev)) == ev


def test_skipped_messages() -> None:
    hello = e2e.Message(conversation="hello")
    assert map_event(event(hello, from_me=True)) == []  # our own send, or the phone's
    status = pb.JID(User="status", Server="broadcast")
    assert map_event(event(hello, chat=status)) == []
    assert map_event(event(e2e.Message())) == []  # nothing to show (protocol message etc.)
    reaction = e2e.Message(reactionMessage=e2e.ReactionMessage(text="+1"))
    assert map_event(event(reaction)) == []
    # history sync never becomes inbox rows
    assert map_event(pb.HistorySync()) == []


def test_ephemeral_wrapper_is_unwrapped() -> None:
    inner = e2e.Message(conversation="disappearing")
    wrapped = e2e.Message(ephemeralMessage=e2e.FutureProofMessage(message=inner))
    [ev] = map_event(event(wrapped))
    assert ev.text == "disappearing"


class Client:
    """Stands in for WhatsApp behind neonize's client: real protobuf answers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def get_joined_groups(self) -> list[pb.GroupInfo]:
        members = [pb.GroupParticipant(JID=ALICE), pb.GroupParticipant(JID=ME)]
        return [pb.GroupInfo(JID=GROUP, GroupName=pb.GroupName(Name="Team"), Participants=members)]

    def is_on_whatsapp(self, *numbers: str) -> list[pb.IsOnWhatsAppResponse]:
        self.calls.append((" ".join(numbers), time.monotonic()))
        return [
            pb.IsOnWhatsAppResponse(
                Query=n,
                IsIn=not n.endswith("0"),
                JID=pb.JID(User=n.lstrip("+"), Server="s.whatsapp.net"),
            )
            for n in numbers
        ]

    def download_any(self, message: Any) -> bytes:
        assert message.imageMessage.directPath == "/p"
        return b"image bytes"


def test_host_answers_groups_contacts_and_media() -> None:
    client, lock = Client(), threading.Lock()
    groups = answer(client, lock, "r1", "groups", {})
    assert groups == RequestDone(
        "r1", [{"id": "120363012345678901@g.us", "subject": "Team", "participants": 2}]
    )
    numbers = [f"55119000{n:05d}" for n in range(1, 61)]
    done = answer(client, lock, "r2", "contacts", {"numbers": numbers})
    assert done.error is None and len(done.result) == 60
    assert [c["number"] for c in done.result] == numbers
    assert done.result[9] == {"number": numbers[9], "on_whatsapp": False, "jid": None}
    assert done.result[0]["jid"] == f"{numbers[0]}@s.whatsapp.net"
    # batched (50 + 10) and paced
    assert [len(c[0].split()) for c in client.calls] == [50, 10]
    assert client.calls[1][1] - client.calls[0][1] >= 0.45
    ref = e2e.Message(imageMessage=e2e.ImageMessage(directPath="/p"))
    import base64

    media = {"ref": base64.b64encode(ref.SerializeToString()).decode()}
    assert answer(client, lock, "r3", "media", {"media": media}) == RequestDone(
        "r3", b"image bytes"
    )
    failed = answer(client, lock, "r4", "media", {"media": {"mime": "x"}})
    assert failed.result is None and failed.error and "cannot be downloaded" in failed.error


def test_host_send_path_accepts_group_jids() -> None:
    from waz_actors.drivers.host.main import parse_to

    assert parse_to("120363012345678901@g.us") == ("120363012345678901", "g.us")
    assert parse_to("5511988887777-1600000000@g.us") == ("5511988887777-1600000000", "g.us")


def test_host_answers_a_query_without_a_session() -> None:
    from waz_actors.drivers.host.main import Host
    from waz_actors.drivers.host.protocol import TO_HOST, pack, unpack

    frame = pack({"op": "query", "iid": "x", "rid": "r9", "kind": "groups", "args": {}})
    host = Host("h1")
    assert host.handle(unpack(frame, TO_HOST)) is True
    out = host.out.get_nowait()
    assert out["op"] == "event" and out["gen"] == -1
    assert from_wire(out["ev"]) == RequestDone("r9", error="no session on host")
