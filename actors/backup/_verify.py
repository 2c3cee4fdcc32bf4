"""Checking a chain of backups before anything is written: each data object's checksum and
authentication, the sequences joining up, and the tenants' hash chains."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import msgspec

from events import ChainKey, ChainVerifier, StoredMessage, decode_stored
from events.chain import MAC_HEADER

from ._crypt import open_object
from ._errors import BackupCorruptError
from ._format import LogMessage, Manifest, data_name, decode_payload
from ._key import BackupKey
from ._targets import Target

__all__ = ["Restorable", "load_chain"]


@dataclass
class Restorable:
    """What a restore writes, checked: the log's messages in order and each bucket's keys."""

    chain: list[Manifest]
    messages: list[LogMessage] = field(default_factory=list)
    buckets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    chains_checked: str = ""
    """How the hash chains were checked: with the chain key (every MAC), or by links only."""

    @property
    def first_seq(self) -> int:
        return self.chain[0].first_seq

    @property
    def last_seq(self) -> int:
        return self.chain[-1].last_seq


class _Link(msgspec.Struct):
    tenant: str = ""
    prev: str = ""


_link_decoder = msgspec.json.Decoder(_Link)


async def load_chain(
    target: Target, key: BackupKey, chain: list[Manifest], chain_key: ChainKey | None
) -> Restorable:
    """Read and check every backup of ``chain`` (full first). Writes nothing.

    With ``chain_key`` every event's MAC and link is verified as ``tgqr audit --verify``
    does; without it, each event's ``prev`` must be the stored MAC of its tenant's previous
    event (a deleted, reordered or replaced event still shows; a forged one needs the key).

    Raises:
        BackupCorruptError: a checksum, an authentication, a sequence or a chain fails.
        BackupKeyError: an object was sealed with another key.
        BackupTargetError, BackupNotFoundError: an object cannot be read.
    """
    out = Restorable(chain)
    expected = chain[0].first_seq
    for manifest in chain:
        name = data_name(manifest.id)
        sealed = await target.get(name)
        if len(sealed) != manifest.data_bytes or (
            hashlib.sha256(sealed).hexdigest() != manifest.data_sha256
        ):
            raise BackupCorruptError(
                f"backup {manifest.id} is corrupted: its data does not match the manifest's "
                "checksum"
            )
        try:
            payload = decode_payload(open_object(key, name, sealed))
        except (zlib.error, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BackupCorruptError(f"backup {manifest.id} does not decode: {exc}") from None
        if len(payload.messages) != manifest.messages or len(payload.entries) != manifest.entries:
            raise BackupCorruptError(f"backup {manifest.id} does not hold what its manifest says")
        for message in payload.messages:
            if not manifest.first_seq <= message.seq <= manifest.last_seq:
                raise BackupCorruptError(
                    f"backup {manifest.id} holds sequence {message.seq}, outside "
                    f"{manifest.first_seq}..{manifest.last_seq}"
                )
            if message.seq != expected:
                raise BackupCorruptError(
                    f"the backed-up log lacks sequences {expected}..{message.seq - 1} (deleted "
                    "from the source): a restore keeps every sequence, and JetStream cannot "
                    "recreate a gap"
                )
            expected += 1
            out.messages.append(message)
        if expected != manifest.last_seq + 1:
            raise BackupCorruptError(
                f"backup {manifest.id} ends at sequence {expected - 1}, its manifest at "
                f"{manifest.last_seq}"
            )
        for entry in payload.entries:
            keys = out.buckets.setdefault(entry.bucket, {})
            if entry.value is None:
                keys.pop(entry.key, None)
            else:
                keys[entry.key] = entry.value
    if chain_key is not None:
        _verify_macs(out, chain_key)
        out.chains_checked = f"every MAC under chain key {chain_key.id}"
    else:
        _verify_links(out)
        out.chains_checked = "links only (no chain key given)"
    return out


def _verify_macs(restorable: Restorable, chain_key: ChainKey) -> None:
    verifier = ChainVerifier(chain_key, start=restorable.first_seq)
    for m in restorable.messages:
        mac = m.headers.get(MAC_HEADER, "")
        verifier.feed(decode_stored(StoredMessage(m.seq, m.subject, m.data, mac, m.stored_ns)))
    report = verifier.finish(restorable.last_seq)
    if report.key_mismatch:
        raise BackupCorruptError(
            f"the chain key ({chain_key.id}) does not match the backed-up log, whose events "
            f"name {', '.join(report.other_key_ids)}"
        )
    if not report.ok:
        raise BackupCorruptError(
            f"a hash chain of the backed-up log breaks at {report.first_break} "
            f"({len(report.unreleased)} break(s)); restore refused"
        )


def _verify_links(restorable: Restorable) -> None:
    heads: dict[str, str] = {}
    for m in restorable.messages:
        try:
            link = _link_decoder.decode(m.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise BackupCorruptError(
                f"sequence {m.seq} of the backed-up log does not decode"
            ) from None
        # The first event of a tenant in a log that starts after sequence 1 links to an
        # event not in the backup: only later links are checked.
        if link.tenant in heads and link.prev != heads[link.tenant]:
            raise BackupCorruptError(
                f"the hash chain of tenant {link.tenant} breaks at sequence {m.seq} of the "
                "backed-up log"
            )
        if link.tenant not in heads and restorable.first_seq <= 1 and link.prev:
            raise BackupCorruptError(
                f"the hash chain of tenant {link.tenant} does not start at sequence {m.seq}"
            )
        heads[link.tenant] = m.headers.get(MAC_HEADER, "")
