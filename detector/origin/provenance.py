"""Provenance beside the verdict: content credentials (C2PA manifests) and AI-generation markers in ordinary
metadata, read from the input file itself.

The model estimates from pixels whether a face was manipulated; content credentials are a different kind of
evidence, a signed statement of which tool made or edited the file. The two are reported side by side and never
mixed: the probability does not move because of a manifest, and a missing manifest proves nothing.

Reading uses the Content Authenticity Initiative's own library (c2pa-python): it checks the signature, the
certificate chain against the trusted authorities given (none by default, so every signer is "not verified"), and
the hash that binds the manifest to the content (a file changed after signing reads as tampered). It never goes on
the network (remote manifests and OCSP are not fetched) and never raises: any failure, a damaged manifest or a bug,
becomes a block that says the credentials could not be read, and why, so provenance cannot turn a good scan into an
error.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.origin import metadata_tags
from detector.origin import source_types
from detector.config import PROVENANCE_MAX_ITEMS, PROVENANCE_MAX_MANIFEST_BYTES, PROVENANCE_MAX_TEXT
from detector.errors import InputError
from detector.origin.metadata_tags import MetadataMarker

log = logging.getLogger(__name__)

#: ``Provenance.status``: what was found in the file.
PRESENT, ABSENT, UNREADABLE, REMOTE, NOT_CHECKED = "present", "absent", "unreadable", "remote", "not_checked"
#: ``Provenance.validation`` for a manifest that was read.
TRUSTED, VALID, TAMPERED, INVALID = "trusted", "valid", "tampered", "invalid"

#: c2pa settings for every read: no network at all (a scan must not fetch URLs named by an untrusted file).
C2PA_SETTINGS: dict[str, Any] = {
    "verify": {"verify_after_reading": True, "verify_trust": True, "remote_manifest_fetch": False,
               "ocsp_fetch": False},
    "core": {"allowed_network_hosts": []},
}
#: Validation codes (C2PA specification) that mean the content or the manifest changed after signing.
TAMPER_CODES = {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
                "assertion.collectionHash.mismatch", "assertion.hashedURI.mismatch",
                "ingredient.hashedURI.mismatch", "ingredient.manifest.mismatch"}
#: Validation codes that mean the signature itself does not hold: then nothing in the manifest is vouched for, not
#: what it says about the content and not who signed it, so the credentials are invalid rather than "tampered".
SIGNATURE_CODES = {"claimSignature.mismatch", "claimSignature.missing"}
CODE_WORDS = {
    "assertion.dataHash.mismatch": "the content no longer matches its signed hash",
    "assertion.bmffHash.mismatch": "the content no longer matches its signed hash",
    "assertion.boxesHash.mismatch": "the content no longer matches its signed hash",
    "assertion.collectionHash.mismatch": "a file of the collection no longer matches its signed hash",
    "assertion.hashedURI.mismatch": "a statement in the manifest was changed after signing",
    "assertion.missing": "a signed statement is missing from the manifest",
    "assertion.cbor.invalid": "a statement in the manifest is malformed",
    "assertion.json.invalid": "a statement in the manifest is malformed",
    "assertion.action.ingredientMismatch": "an action names an ingredient that is not there",
    "claimSignature.mismatch": "the signature does not match the manifest",
    "claimSignature.missing": "the manifest is not signed",
    "claimSignature.outsideValidity": "signed outside its certificate's validity period",
    "claim.missing": "the manifest has no claim",
    "claim.malformed": "the manifest's claim is malformed",
    "manifest.inaccessible": "a manifest it refers to cannot be read",
    "manifest.missing": "a manifest it refers to is missing",
    "ingredient.hashedURI.mismatch": "an ingredient's credentials were changed",
    "ingredient.manifest.mismatch": "an ingredient's credentials were changed",
    "signingCredential.untrusted": "the signer is not on the trusted-signer list",
    "signingCredential.invalid": "the signing certificate is not valid for signing",
    "signingCredential.revoked": "the signing certificate was revoked",
    "signingCredential.ocsp.revoked": "the signing certificate was revoked",
    "signingCredential.expired": "the signing certificate had expired",
    "timeStamp.mismatch": "the timestamp does not match the signature",
    "timeStamp.untrusted": "the timestamp authority is not trusted",
    "timeStamp.outsideValidity": "the timestamp is outside its certificate's validity period",
    "algorithm.unsupported": "signed with an unsupported algorithm",
}
ACTION_WORDS = {"c2pa.created": "created", "c2pa.edited": "edited", "c2pa.opened": "opened an existing file",
                "c2pa.placed": "placed another file into it", "c2pa.color_adjustments": "adjusted colours",
                "c2pa.edited.metadata": "edited metadata", "c2pa.published": "published",
                "c2pa.transcoded": "transcoded", "c2pa.repackaged": "repackaged", "c2pa.converted": "converted",
                "c2pa.cropped": "cropped", "c2pa.resized": "resized", "c2pa.filtered": "filtered",
                "c2pa.drawing": "drew on it", "c2pa.removed": "removed something", "c2pa.redacted": "redacted",
                "c2pa.watermarked": "watermarked", "c2pa.orientation": "rotated or flipped",
                "c2pa.unknown": "unspecified change"}
NO_CREDENTIALS = ("No content credentials. This proves nothing: most genuine media carry none, and credentials "
                  "are easily stripped.")
METADATA_CAVEAT = "unsigned, anyone can write or remove it"


@dataclass
class CredentialAction:
    """One action a manifest records (``c2pa.actions``), with its digital source type in plain words."""

    action: str
    words: str
    source_type: str | None = None
    source: str | None = None
    software: str | None = None
    when: str | None = None


@dataclass
class Ingredient:
    """A file the media was made from, as the manifest lists it, with that file's own credentials if it had any."""

    title: str | None
    format: str | None
    relationship: str | None
    has_credentials: bool
    source: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class ValidationCode:
    """One validation failure: the C2PA code, our words for it, and the library's own explanation."""

    code: str
    words: str
    explanation: str | None = None


@dataclass
class Provenance:
    """Everything the file says about where it came from. ``summary`` is the line shown beside the verdict,
    ``short`` its table-cell form. ``status`` is one of PRESENT, ABSENT, UNREADABLE, REMOTE, NOT_CHECKED."""

    status: str
    manifest_present: bool | None
    summary: str = ""
    short: str = ""
    claim_generator: str | None = None
    claim_generator_version: str | None = None
    title: str | None = None
    signer: str | None = None
    signer_subject: str | None = None
    signer_issuer: str | None = None
    signer_verified: bool = False
    signing_time: str | None = None
    signature_algorithm: str | None = None
    validation: str | None = None
    validation_words: str | None = None
    validation_state: str | None = None
    validation_codes: list[ValidationCode] = field(default_factory=list)
    source: str | None = None
    source_kind: str | None = None
    actions: list[CredentialAction] = field(default_factory=list)
    ingredients: list[Ingredient] = field(default_factory=list)
    manifests: int = 0
    remote_url: str | None = None
    reason: str | None = None
    metadata: list[MetadataMarker] = field(default_factory=list)
    metadata_summary: str | None = None
    #: what validly signed credentials say that bears on the verdict (made or edited with AI, or edited), shown in
    #: the report's and the page's headline beside the pixel verdict; None when they say nothing of the kind
    headline: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _text(value: Any) -> str | None:
    """A printable, length-capped string, or None for missing values (manifest fields are untrusted input)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = "".join(c if c.isprintable() else " " for c in str(value)).strip()
    if not text:
        return None
    return text if len(text) <= PROVENANCE_MAX_TEXT else text[: PROVENANCE_MAX_TEXT - 1] + "…"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value[: PROVENANCE_MAX_ITEMS * 20] if isinstance(value, list) else []


def load_trusted_signers(path: str | Path) -> str:
    """The PEM text of a trusted-signer list (certificate authorities), checked to hold at least one certificate;
    raises :class:`InputError` with a one-line reason."""
    from cryptography import x509

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the trusted-signer list ({exc.strerror or exc})") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise InputError(f"{path}: not a PEM file of certificates (the trusted-signer list holds the certificates "
                         "of the authorities whose signers you trust)")
    return data.decode("ascii", "replace")


def trust_fingerprint(trusted_pem: str | None) -> str | None:
    """A short stable id of a trusted-signer list, so a resumed run can tell whether results used the same list."""
    return hashlib.sha256(trusted_pem.encode()).hexdigest()[:16] if trusted_pem else None


@functools.lru_cache(maxsize=4)
def _context(trusted_pem: str | None) -> Any:
    """One c2pa Context per trusted-signer list (a Context may serve many readers)."""
    import c2pa

    settings = json.loads(json.dumps(C2PA_SETTINGS))
    if trusted_pem:
        settings["trust"] = {"trust_anchors": trusted_pem}
    return c2pa.Context.from_dict(settings)


def _manifest_sources(manifest: dict) -> tuple[list[CredentialAction], list[source_types.SourceType]]:
    """The actions of one manifest and the source types they state."""
    actions, kinds = [], []
    for assertion in _list(manifest.get("assertions")):
        assertion = _dict(assertion)
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for item in _list(_dict(assertion.get("data")).get("actions")):
            item = _dict(item)
            name = _text(item.get("action")) or "unknown"
            kind = source_types.lookup(_text(item.get("digitalSourceType")))
            if kind is not None:
                kinds.append(kind)
            agent = item.get("softwareAgent")
            if isinstance(agent, dict):
                agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
            actions.append(CredentialAction(
                action=name, words=ACTION_WORDS.get(name, name.removeprefix("c2pa.").replace("_", " ")),
                source_type=_text(item.get("digitalSourceType")), source=kind.words if kind else None,
                software=_text(agent), when=_text(item.get("when"))))
    return actions, kinds


def _code(item: Any) -> ValidationCode | None:
    item = _dict(item)
    code = _text(item.get("code"))
    if code is None:
        return None
    explanation = _text(item.get("explanation"))
    return ValidationCode(code=code, words=CODE_WORDS.get(code, explanation or code), explanation=explanation)


def _name(parts: dict) -> str | None:
    """'CN=..., O=...' from a certificate name as c2pa's crJSON gives it ({"CN": ..., "O": ...})."""
    text = ", ".join(f"{k}={v}" for k, v in _dict(parts).items() if isinstance(v, (str, int)))
    return _text(text)


def _certificate(reader: Any, label: str) -> tuple[str | None, str | None]:
    """Subject and issuer of the active manifest's signing certificate (from crJSON; None where unavailable)."""
    try:
        crjson = json.loads(reader.crjson())
    except Exception:  # an older library or an odd manifest: the signature_info names still identify the signer
        return None, None
    for manifest in _list(_dict(crjson).get("manifests")):
        manifest = _dict(manifest)
        if manifest.get("label") == label:
            info = _dict(_dict(manifest.get("signature")).get("certificateInfo"))
            return _name(info.get("subject")), _name(info.get("issuer"))
    return None, None


def _interpret(store: dict, subject: str | None, issuer: str | None, trust_configured: bool) -> Provenance:
    """A read manifest store (c2pa's JSON) in plain words; ``trust_configured``: a trusted-signer list was given."""
    manifests = _dict(store.get("manifests"))
    label = store.get("active_manifest")
    active = _dict(manifests.get(label)) if isinstance(label, str) else {}
    if not active:
        return Provenance(status=UNREADABLE, manifest_present=True, manifests=len(manifests),
                          reason="the manifest store has no active manifest")
    prov = Provenance(status=PRESENT, manifest_present=True, manifests=len(manifests), title=_text(active.get("title")))
    generators = _list(active.get("claim_generator_info"))
    if generators:
        first = _dict(generators[0])
        prov.claim_generator, prov.claim_generator_version = _text(first.get("name")), _text(first.get("version"))
    elif active.get("claim_generator"):  # version 1 claims: "Tool/1.2 library/0.3"
        name, _, version = str(active["claim_generator"]).split(" ")[0].partition("/")
        prov.claim_generator, prov.claim_generator_version = _text(name), _text(version)
    signature = _dict(active.get("signature_info"))
    common_name, organisation = _text(signature.get("common_name")), _text(signature.get("issuer"))
    prov.signer = ", ".join(dict.fromkeys(p for p in (common_name, organisation) if p)) or None
    prov.signer_subject, prov.signer_issuer = subject, issuer
    prov.signing_time = _text(signature.get("time"))
    prov.signature_algorithm = _text(signature.get("alg"))

    prov.actions, kinds = _manifest_sources(active)
    prov.actions = prov.actions[:PROVENANCE_MAX_ITEMS]
    ingredient_kinds = []
    for item in _list(active.get("ingredients"))[:PROVENANCE_MAX_ITEMS]:
        item = _dict(item)
        own_label = item.get("active_manifest")
        own = _dict(manifests.get(own_label)) if isinstance(own_label, str) else {}
        own_source = source_types.most_telling(_manifest_sources(own)[1]) if own else None
        if own_source is not None:
            ingredient_kinds.append(own_source)
        failures = _list(_dict(_dict(item.get("validation_results")).get("activeManifest")).get("failure"))
        failures += _list(item.get("validation_status"))  # version 1 manifests
        problems = list(dict.fromkeys(c.words for c in map(_code, failures) if c is not None))
        prov.ingredients.append(Ingredient(
            title=_text(item.get("title")), format=_text(item.get("format")),
            relationship=_text(item.get("relationship")), has_credentials=bool(own_label),
            source=own_source.words if own_source else None, problems=problems[:PROVENANCE_MAX_ITEMS]))
    telling = source_types.most_telling(kinds)
    if telling is not None:
        prov.source, prov.source_kind = telling.words, telling.kind
    elif (telling := source_types.most_telling(ingredient_kinds)) is not None:
        # the active manifest states no source type: what it was made from is the next best thing to say
        prov.source, prov.source_kind = f"made from media {telling.words}", telling.kind

    codes = [c for c in map(_code, _list(store.get("validation_status"))) if c is not None]
    prov.validation_codes = codes[:PROVENANCE_MAX_ITEMS]
    prov.validation_state = state = _text(store.get("validation_state"))
    names = {c.code for c in codes}
    signer_problem = any(code.startswith("signingCredential.") for code in names)
    if names & SIGNATURE_CODES:
        prov.validation = INVALID
        prov.validation_words = "invalid: " + next(c.words for c in codes if c.code in SIGNATURE_CODES)
    elif names & TAMPER_CODES:
        prov.validation = TAMPERED
        prov.validation_words = "tampered: " + next(c.words for c in codes if c.code in TAMPER_CODES)
    elif state == "Trusted":
        prov.validation, prov.validation_words = TRUSTED, "signature valid, signer verified"
    elif state == "Valid" or (state is None and names <= {"signingCredential.untrusted"}):
        prov.validation, prov.validation_words = VALID, "signature valid, signer not verified"
    else:
        first = next((c for c in codes if c.code != "signingCredential.untrusted"), None)
        prov.validation = INVALID
        prov.validation_words = "invalid: " + (first.words if first else "the library rejected the manifest")
    # verified only when the chain was checked against a configured list and passed; a tampered file keeps the
    # answer, since who signed is still known when the content no longer matches
    prov.signer_verified = trust_configured and not signer_problem and prov.validation in (TRUSTED, TAMPERED)
    return prov


def read_credentials(path: Path, trusted_pem: str | None = None) -> Provenance:
    """The content credentials of one file. Expected failures (no manifest, a damaged one) come back as a status;
    unexpected ones raise and are caught by :func:`read_provenance`."""
    try:
        import c2pa
    except ImportError as exc:
        return Provenance(status=NOT_CHECKED, manifest_present=None,
                          reason=f"the c2pa-python library is not installed ({exc})")
    context = _context(trusted_pem)
    try:
        with path.open("rb") as stream, c2pa.Reader(stream, context=context) as reader:
            text = reader.json()
            if len(text) > PROVENANCE_MAX_MANIFEST_BYTES:
                return Provenance(status=UNREADABLE, manifest_present=True,
                                  reason=f"oversized manifest: {len(text):,} bytes of manifest data, more than the "
                                         f"{PROVENANCE_MAX_MANIFEST_BYTES:,} read here; not interpreted")
            store = json.loads(text)
            label = _dict(store).get("active_manifest")
            subject, issuer = _certificate(reader, label) if isinstance(label, str) else (None, None)
    except c2pa.C2paError.ManifestNotFound:
        return Provenance(status=ABSENT, manifest_present=False)
    except c2pa.C2paError.NotSupported:
        return Provenance(status=ABSENT, manifest_present=False,
                          notes=["the c2pa library cannot read content credentials from this file type"])
    except c2pa.C2paError as exc:
        message = str(exc)
        if message.startswith("Remote") or isinstance(exc, c2pa.C2paError.RemoteManifest):
            url = message.rsplit(" ", 1)[-1] if "http" in message else None
            return Provenance(status=REMOTE, manifest_present=True, remote_url=_text(url),
                              reason="not fetched: scans make no network requests")
        return Provenance(status=UNREADABLE, manifest_present=None, reason=_text(f"damaged manifest: {message}"))
    except ValueError as exc:  # the library returned something that is not JSON
        return Provenance(status=UNREADABLE, manifest_present=True, reason=_text(f"unreadable manifest: {exc}"))
    return _interpret(_dict(store), subject, issuer, bool(trusted_pem))


def _describe(prov: Provenance) -> None:
    """Fill ``summary``, ``short`` and ``metadata_summary``: the words shown beside the verdict."""
    if prov.status == PRESENT:
        what = prov.source or (f"made with {prov.claim_generator}" if prov.claim_generator else "no source stated")
        signer = prov.signer or "unknown"
        trust = f"trusted signer: {signer}" if prov.signer_verified else f"signer not verified: {signer}"
        check = {TRUSTED: "signature valid", VALID: "signature valid",
                 TAMPERED: "TAMPERED: the content changed after signing"}.get(
            prov.validation or "", f"INVALID: {(prov.validation_words or '').removeprefix('invalid: ')}")
        prov.summary = f"Content credentials: {what} ({check}; {trust})"
        state = {TRUSTED: "signature valid, trusted signer", VALID: "signature valid, signer not verified",
                 TAMPERED: "TAMPERED"}.get(prov.validation or "", "INVALID")
        prov.short = f"{what}; {state}"
        prov.headline = _headline(prov)
    elif prov.status == ABSENT:
        prov.summary, prov.short = NO_CREDENTIALS, "none"
    elif prov.status == REMOTE:
        where = prov.remote_url or "no address given"
        prov.summary = f"Content credentials are stored online ({where}); {prov.reason}."
        prov.short = "stored online, not fetched"
    elif prov.status == NOT_CHECKED:
        prov.summary, prov.short = f"Content credentials not checked: {prov.reason}.", "not checked"
    else:
        prov.summary, prov.short = f"Content credentials could not be read: {prov.reason}.", "unreadable"
    meanings = list(dict.fromkeys(f"{m.meaning} ({m.where} {m.field})" for m in prov.metadata))
    if meanings:
        prov.metadata_summary = f"Metadata ({METADATA_CAVEAT}): " + "; ".join(meanings[:5])


def _headline(prov: Provenance) -> str | None:
    """'signed content credentials say: generated by AI' (or 'edited') when a valid signature says so; a tampered or
    invalid manifest vouches for nothing and is reported in its own box only."""
    if prov.validation not in (TRUSTED, VALID):
        return None
    if prov.source_kind == source_types.AI:
        return f"signed content credentials say: {prov.source}"
    if any(action.action.startswith("c2pa.edited") for action in prov.actions):
        return "signed content credentials say: edited"
    return None


def _clean(message: str, path: Path) -> str:
    """An error message without the file's full path (a server's upload folder is nobody's business)."""
    return message.replace(str(path), path.name)


def read_provenance(path: str | Path, trusted_pem: str | None = None) -> Provenance:
    """Content credentials and metadata markers of one file. Never raises: any failure becomes an UNREADABLE block
    (or a note, for the metadata part) that gives the reason."""
    t0 = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        # a pipe, a device or a missing file: opening one to look for a manifest could block forever, and the scan
        # reports the input's own problem anyway
        prov = Provenance(status=NOT_CHECKED, manifest_present=None, reason="not a regular file")
        _describe(prov)
        prov.seconds = round(time.perf_counter() - t0, 4)
        return prov
    try:
        prov = read_credentials(path, trusted_pem)
    except Exception as exc:  # the last line of defence: provenance must never turn a scan into an error
        log.warning("reading content credentials of %s failed", path, exc_info=True)
        prov = Provenance(status=UNREADABLE, manifest_present=None,
                          reason=_text(_clean(f"{type(exc).__name__}: {exc}", path)))
    try:
        prov.metadata = metadata_tags.read_markers(path)
    except Exception as exc:
        prov.notes.append(_text(_clean(f"ordinary metadata could not be read ({type(exc).__name__}: {exc})", path)))
    _describe(prov)
    prov.seconds = round(time.perf_counter() - t0, 4)
    return prov
