"""The concept set of the diversity recipe (paper 4.2, table 4) and the informativeness of a sample.

Matching. A text is lower-cased and cut into words: maximal runs of ASCII letters, digits, `_` and
non-ASCII characters other than common Unicode punctuation (the boundary of a regex `\\b`, with
accented letters inside words), so "redo" is not "red", "red-brown" holds "red" and "red's" and
"red’s" hold "red". A key is one or more words; a multi-word key ("in back", "left direction", "medium size")
matches where its words follow each other in one text, whatever non-word characters separate them.
Occurrences are read leftmost-longest, like a regex alternation with the longer keys first: the
"left" of "left direction" is that key, not also the key "left".

Informativeness. The paper measures "overlap with the concept set" without a formula. Ours, the
default, is the number of DISTINCT key words a sample matches (over all its messages): the literal
size of the overlap between the sample's words and the key set. It grows with breadth, not with
repetition, so a long answer saying "red" ten times scores 1. The natural alternative, `concepts`,
is the number of concepts (0-5) a sample covers; it is coarse (most samples tie) and so leaves the
cut of the less-informative half mostly to the tie-break. Both are computed in the same pass.

The engine works on the UTF-8 bytes of a whole batch of texts with numpy: word edges from a byte
class mask, then each word's bytes as fixed-width integers looked up in a direct-mapped table and
compared byte for byte (exact, no hashing risk). `keys_in_text` runs the same code on one string.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from svit_dataset.errors import SvitInputError

# Word characters: ASCII letters, digits, `_`, and any non-ASCII character except the common Unicode
# punctuation below (replaced by a space first). Everything else separates words.
UNICODE_SEPARATORS = ("\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014", "\u2026", "\u00a0")

# Paper table 4, as printed. The PDF text reads "olive peach" without a comma inside the colour
# list of single words: two keys, "olive" and "peach" (no other colour key has two words).
PAPER_CONCEPTS: dict[str, tuple[str, ...]] = {
    "color": (
        "beige", "black", "brown", "color", "gold", "gray", "green", "khaki", "lavender", "mauve",
        "olive", "peach", "pink", "red", "rose", "salmon", "white",
    ),
    "material": (
        "canvas", "cardboard", "ceramic", "cork", "denim", "fabric", "fiberglass", "foam", "glass",
        "glassy", "granite", "iron", "latex", "leather", "linen", "marble", "mesh", "metal", "nylon",
        "plaster", "plastic", "polymer", "porcelain", "satiny", "silk", "steel", "stone", "stony",
        "suede", "velvet", "vinyl", "wood", "wooden",
    ),
    "quantity": (
        "account", "being", "existence", "five", "four", "number", "one", "seven", "six",
        "substance", "ten", "three", "total", "two",
    ),
    "spatial relation": (
        "above", "adjacent", "ahead", "backward", "below", "between", "central", "close", "down",
        "downward", "far", "in back", "inside", "left", "left direction", "near", "on", "outside",
        "peripheral", "position", "proximate", "remote", "surrounding", "under", "up", "upstairs",
        "upward", "without",
    ),
    "size": (
        "big", "compact", "compactness", "dimension", "diminutive", "enormity", "enormous", "giant",
        "gigantic", "immense", "immensity", "large", "largeness", "magnitude", "massive",
        "medium size", "microscopic", "miniature", "minuscule", "moderately", "oversized",
        "proportion", "sizeable", "slightly", "small", "smaller", "vast", "vastness",
    ),
}  # fmt: skip

# Informativeness scores: name -> what it counts. `keys` is the default (see the module docstring).
SCORES = {
    "keys": "distinct concept key words matched by the sample",
    "concepts": "concepts (of the concept set) covered by the sample",
}
DEFAULT_SCORE = "keys"


def text_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Lower-cased UTF-8 bytes of `texts` back to back (16 zero bytes of padding after them) and
    the offset of each text in them (n + 1 offsets)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    low = pc.utf8_lower(pc.fill_null(texts, ""))
    offset_type = np.int64 if pa.types.is_large_string(low.type) else np.int32
    buffers = low.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[low.offset : low.offset + len(low) + 1]
    offsets = offsets.astype(np.int64)
    data = np.zeros(int(offsets[-1] - offsets[0]) + 16, dtype=np.uint8)
    if buffers[2] is not None:
        data[: data.size - 16] = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def word_spans(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end byte of every word, in order; a word never crosses from one text to the next."""
    n = data.size - 16
    b = data[:n]
    u8 = np.uint8  # uint8 constants keep numpy from widening the byte arrays
    # a-z, 0-9, _ (after lower-casing) and every byte of a non-ASCII character; one False on each
    # side so that the edges below come in pairs
    is_word = np.zeros(n + 2, dtype=bool)
    is_word[1:-1] = ((b - u8(97)) < u8(26)) | ((b - u8(48)) < u8(10)) | (b == u8(95)) | (b >= u8(0x80))
    if n and b.max() >= 0x80:
        # UTF-8 of the Unicode punctuation that separates words: E2 80 xx, and C2 A0 (no-break space)
        for lead in np.flatnonzero(b == 0xE2).tolist():
            if data[lead + 1] == 0x80 and data[lead + 2] in _E2_80_SEPARATORS:
                is_word[lead + 1 : lead + 4] = False
        c2 = np.flatnonzero((b[:-1] == u8(0xC2)) & (b[1:] == u8(0xA0)))
        is_word[c2 + 1] = False
        is_word[c2 + 2] = False
    # word edges alternate: start, end, start, end...
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    starts, ends = edges[0::2], edges[1::2]
    # Texts are back to back: a word running from the end of one text into the next is two words.
    inner = offsets[1:-1]
    inner = inner[(inner > 0) & (inner < n)]
    cut = np.unique(inner[is_word[inner] & is_word[inner + 1]])  # word bytes on both sides
    if cut.size:
        starts = np.sort(np.concatenate([starts, cut]))
        ends = np.sort(np.concatenate([ends, cut]))
    return starts, ends


_E2_80_SEPARATORS = frozenset(
    c.encode("utf-8")[2] for c in UNICODE_SEPARATORS if c.encode("utf-8")[:2] == b"\xe2\x80"
)
_LOW_BYTES = np.array([0] + [(1 << (8 * k)) - 1 for k in range(1, 8)] + [(1 << 64) - 1], dtype=np.uint64)


def word_chunks(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n_chunks: int) -> list[np.ndarray]:
    """Each word's bytes as `n_chunks` little-endian uint64 (zero beyond its length): an exact,
    fixed-width key for words of up to 8 * n_chunks bytes."""
    # An unaligned uint64 view at every byte offset (the 16 bytes of padding keep reads in bounds).
    view = np.ndarray((data.size - 7,), dtype="<u8", buffer=data, strides=(1,))
    chunks = [view[starts] & _LOW_BYTES[np.minimum(lengths, 8)]]
    for j in range(1, n_chunks):
        chunk = np.zeros(starts.size, dtype=np.uint64)
        longer = np.flatnonzero(lengths > 8 * j)  # most words fit in the first chunk
        chunk[longer] = view[starts[longer] + 8 * j] & _LOW_BYTES[np.minimum(lengths[longer] - 8 * j, 8)]
        chunks.append(chunk)
    return chunks


def _words(text: str) -> list[str]:
    """Lower-cased words of one string, by the engine's own split."""
    data, offsets = text_bytes(pa.array([text], pa.string()))
    starts, ends = word_spans(data, offsets)
    raw = data.tobytes()
    return [raw[a:b].decode("utf-8") for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


@dataclasses.dataclass(frozen=True)
class ConceptSet:
    """Concepts and their key words (each key one or more words), compiled for matching."""

    concepts: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        if not self.concepts:
            raise SvitInputError("the concept set is empty: give at least one concept with key words")
        seen: dict[tuple[str, ...], str] = {}
        for concept, keys in self.concepts.items():
            if not keys:
                raise SvitInputError(f"concept {concept!r} has no key words")
            for key in keys:
                words = tuple(_words(key))
                if not words or " ".join(words) != key.strip().lower():
                    raise SvitInputError(
                        f"concept {concept!r}: key {key!r} must be words (letters, digits, _) "
                        "separated by single spaces"
                    )
                if words in seen:
                    raise SvitInputError(f"key {key!r} is listed under both {seen[words]!r} and {concept!r}")
                seen[words] = concept

    @classmethod
    def paper(cls) -> ConceptSet:
        return cls(PAPER_CONCEPTS)

    @classmethod
    def from_file(cls, path: str | Path) -> ConceptSet:
        """A user concept set: a JSON or YAML mapping {concept: [key, ...]}."""
        path = Path(path)
        if not path.is_file():
            raise SvitInputError(f"--concepts {path}: not found")
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as err:
            raise SvitInputError(f"--concepts {path}: not valid JSON/YAML ({err})") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(w, str) for w in v)
            for k, v in data.items()
        ):
            raise SvitInputError(
                f"--concepts {path}: expected a mapping of concept name to a list of key words, "
                'e.g. {"color": ["red", "dark blue"]}'
            )
        try:
            return cls({k: tuple(v) for k, v in data.items()})
        except SvitInputError as err:
            raise SvitInputError(f"--concepts {path}: {err}") from None

    def to_dict(self) -> dict[str, list[str]]:
        return {c: list(keys) for c, keys in self.concepts.items()}

    @property
    def names(self) -> list[str]:
        return list(self.concepts)

    @property
    def keys(self) -> list[str]:
        """Every key, in concept order; a key's index is its id in match results."""
        return [k.strip().lower() for keys in self.concepts.values() for k in keys]

    @property
    def key_concept(self) -> np.ndarray:
        """Concept index of each key id."""
        return np.array([i for i, keys in enumerate(self.concepts.values()) for _ in keys], dtype=np.int64)

    def matcher(self) -> ConceptMatcher:
        return ConceptMatcher.compile(self)


@dataclasses.dataclass(frozen=True)
class ConceptMatcher:
    """The concept set as arrays: a vocabulary of every word of every key (looked up by exact bytes),
    single-word keys by word code, and multi-word keys as code sequences (longest first, for
    leftmost-longest matching)."""

    concept_set: ConceptSet
    single_key: np.ndarray  # word code -> key id of the one-word key, or -1
    multi: tuple[tuple[int, tuple[int, ...]], ...]  # (key id, word codes), longest first
    key_concept: np.ndarray
    # The vocabulary (every distinct word of some key, sorted; a word's code is its index):
    vocab_lengths: np.ndarray  # bytes of each word
    vocab_chunks: list[np.ndarray]  # its bytes as uint64 chunks (word_chunks)
    vocab_digest: np.ndarray
    table: np.ndarray  # top `bits` bits of the digest -> code, or -1
    bits: int
    first_bytes: np.ndarray  # bool [(max length + 2) << 16]: some word has this length and start

    @classmethod
    def compile(cls, concept_set: ConceptSet) -> ConceptMatcher:
        keys = [tuple(k.split(" ")) for k in concept_set.keys]
        vocab = sorted({w for words in keys for w in words})
        code = {w: i for i, w in enumerate(vocab)}
        single = np.full(len(vocab), -1, dtype=np.int64)
        multi = []
        for key_id, words in enumerate(keys):
            if len(words) == 1:
                single[code[words[0]]] = key_id
            else:
                multi.append((key_id, tuple(code[w] for w in words)))
        multi.sort(key=lambda item: -len(item[1]))
        encoded = [w.encode("utf-8") for w in vocab]
        lengths = np.array([len(w) for w in encoded], dtype=np.int64)
        n_chunks = -(-int(lengths.max()) // 8)
        data = np.zeros(sum(lengths) + 16, dtype=np.uint8)
        data[: data.size - 16] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        chunks = word_chunks(data, starts, lengths, n_chunks)
        digest = _digest(chunks, lengths)
        # A direct-mapped table: the smallest power of two (>= 8x the words) where no two words
        # share a slot, so a lookup is one gather; the bytes are compared after it.
        bits = max(10, int(len(vocab)).bit_length() + 3)
        while np.unique(digest >> np.uint64(64 - bits)).size < len(vocab):
            bits += 1
        table = np.full(1 << bits, -1, dtype=np.int64)
        table[(digest >> np.uint64(64 - bits)).astype(np.int64)] = np.arange(len(vocab))
        # length x first two bytes of every vocabulary word: a cheap filter before the lookup
        first = np.zeros((int(lengths.max()) + 2) << 16, dtype=bool)
        for word in encoded:
            if len(word) == 1:
                first[(1 << 16) + word[0] + (np.arange(256) << 8)] = True
            else:
                first[(len(word) << 16) + word[0] + (word[1] << 8)] = True
        return cls(
            concept_set,
            single,
            tuple(multi),
            concept_set.key_concept,
            lengths,
            chunks,
            digest,
            table,
            bits,
            first,
        )

    @property
    def n_keys(self) -> int:
        return len(self.key_concept)

    def word_codes(
        self, data: np.ndarray, starts: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(word ordinal, vocabulary code) of the words that are key words: exact byte equality."""
        lengths = ends - starts
        longest = (self.first_bytes.size >> 16) - 2
        two = np.ndarray((data.size - 1,), dtype="<u2", buffer=data, strides=(1,))[starts]
        fits = np.flatnonzero(self.first_bytes[(np.minimum(lengths, longest + 1) << 16) + two])
        lengths = lengths[fits]
        chunks = word_chunks(data, starts[fits], lengths, len(self.vocab_chunks))
        digest = _digest(chunks, lengths)
        code = self.table[(digest >> np.uint64(64 - self.bits)).astype(np.int64)]
        slot = np.flatnonzero(code >= 0)
        # the slot only names a candidate: equal digest, length and bytes make the match
        code = code[slot]
        same = (self.vocab_digest[code] == digest[slot]) & (self.vocab_lengths[code] == lengths[slot])
        for mine, theirs in zip(chunks, self.vocab_chunks, strict=True):
            same &= theirs[code] == mine[slot]
        return fits[slot[same]], code[same]

    def match(self, texts: pa.Array, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Key occurrences in `texts` (strings), as (owner of the text, key id) per occurrence.

        `owner[i]` is the sample (or any group) text i belongs to; a key never spans two texts.
        """
        data, offsets = text_bytes(texts)
        starts, ends = word_spans(data, offsets)
        # Only the words that occur in some key matter from here: a small share of all words.
        hit, code = self.word_codes(data, starts, ends)
        if hit.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        text = np.searchsorted(offsets, starts[hit], side="right") - 1
        taken = np.zeros(hit.size, dtype=bool)
        found_at: list[np.ndarray] = []
        found_key: list[np.ndarray] = []
        for key_id, seq in self.multi:
            k = len(seq)
            if hit.size < k:
                continue
            n = hit.size - k + 1
            ok = np.ones(n, dtype=bool)
            for j, c in enumerate(seq):
                ok &= (code[j : j + n] == c) & ~taken[j : j + n]
                if j:  # the next word of the same text
                    ok &= (hit[j : j + n] == hit[:n] + j) & (text[j : j + n] == text[:n])
            starts_at = _non_overlapping(np.flatnonzero(ok), k)
            for j in range(k):
                taken[starts_at + j] = True
            found_at.append(starts_at)
            found_key.append(np.full(starts_at.size, key_id, dtype=np.int64))
        single = self.single_key[code]
        alone = np.flatnonzero((single >= 0) & ~taken)
        found_at.append(alone)
        found_key.append(single[alone])
        at = np.concatenate(found_at)
        return owner[text[at]], np.concatenate(found_key)


def _digest(chunks: list[np.ndarray], lengths: np.ndarray) -> np.ndarray:
    """A multiplicative hash of a word's chunks and length (its top bits index the table)."""
    h = (chunks[0] ^ (lengths.astype(np.uint64) << np.uint64(56))) * np.uint64(0x9E3779B97F4A7C15)
    for c in chunks[1:]:
        h = (h ^ c) * np.uint64(0xBF58476D1CE4E5B9)
    return h


def _non_overlapping(starts: np.ndarray, k: int) -> np.ndarray:
    """Leftmost non-overlapping occurrences of a k-word key ("in back in back" is two, and
    a key whose words repeat cannot claim a word twice)."""
    if starts.size < 2 or k < 2:
        return starts
    keep = []
    last_end = -1
    for s in starts.tolist():
        if s >= last_end:
            keep.append(s)
            last_end = s + k
    return np.array(keep, dtype=np.int64)


@dataclasses.dataclass
class Informativeness:
    """Per-sample scores and, for the reports, which keys each sample matched (as counts)."""

    keys: np.ndarray  # int32 [n]: distinct keys matched
    concepts: np.ndarray  # int8 [n]: concepts covered
    concept_mask: np.ndarray  # uint32 [n]: bit c set when concept c is covered
    key_samples: np.ndarray  # int64 [n_keys]: samples matching each key

    def score(self, name: str) -> np.ndarray:
        if name not in SCORES:
            raise SvitInputError(f"--informativeness {name!r}: expected one of {', '.join(SCORES)}")
        return self.keys if name == "keys" else self.concepts


def score_groups(
    matcher: ConceptMatcher, texts: pa.Array, owner: np.ndarray, n_groups: int
) -> Informativeness:
    """Informativeness of `n_groups` samples whose texts are `texts` (text i belongs to owner[i])."""
    group, key = matcher.match(texts, owner)
    seen = np.zeros((n_groups, matcher.n_keys), dtype=bool)  # sample x key, for a batch of samples
    seen[group, key] = True
    n_concepts = int(matcher.key_concept.max()) + 1
    per_concept = np.zeros((n_groups, n_concepts), dtype=bool)
    for c in range(n_concepts):
        per_concept[:, c] = seen[:, matcher.key_concept == c].any(axis=1)
    mask = (per_concept.astype(np.uint32) << np.arange(n_concepts, dtype=np.uint32)).sum(
        axis=1, dtype=np.uint32
    )
    return Informativeness(
        keys=seen.sum(axis=1, dtype=np.int32),
        concepts=per_concept.sum(axis=1, dtype=np.int8),
        concept_mask=mask,
        key_samples=seen.sum(axis=0, dtype=np.int64),
    )


def keys_in_text(text: str, concept_set: ConceptSet | None = None) -> list[str]:
    """The distinct keys one text matches, sorted: the vectorised engine on one string."""
    matcher = (concept_set or ConceptSet.paper()).matcher()
    _, key_ids = matcher.match(pa.array([text], pa.string()), np.zeros(1, dtype=np.int64))
    keys = matcher.concept_set.keys
    return sorted({keys[k] for k in key_ids.tolist()})
