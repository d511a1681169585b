"""Hidden keys of the encrypted-first mode, spec/privacy.md section 3.5: Monocypher's Elligator 2
against published hash-to-curve vectors, the dirty public key's DH, representatives that look
random in all 256 bits, the handshake with hidden keys between two of ours and against another
Noise implementation, and the decision vectors."""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import monocypher  # type: ignore[import-not-found]
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

from obscura_ref.transport import (
    FIRST_PROLOGUE,
    MESSAGE1_SIZE,
    MESSAGE2_SIZE,
    PROTOCOL_NAME,
    HiddenKeyPair,
    NoiseError,
    NoiseHandshake,
    draw_hidden_key_pair,
    elligator,
    hidden_key_pair,
    hide_message,
    public_key,
    unhide,
    unhide_message,
)
from obscura_ref.wire import MAGIC

from .vector_cases import cases_of

P = 2**255 - 19


def _seed(n: int, label: str = "seed") -> bytes:
    return hashlib.sha256(f"{label} {n}".encode()).digest()


def _dh(private: bytes, public: bytes) -> bytes:
    peer = X25519PublicKey.from_public_bytes(public)
    return X25519PrivateKey.from_private_bytes(private).exchange(peer)


# Monocypher's Elligator 2.

# The hash-to-curve test vectors of the suite curve25519_XMD:SHA-512_ELL2_NU_ (RFC 9380 and its
# CFRG draft's poc/vectors): the field element u, and Q.x = map_to_curve_elligator2(u), both
# big-endian. A representative holds 254 bits, so a u of 2^254 or more is given as p - u, which
# Elligator 2 maps to the same point.
HASH_TO_CURVE = [
    (
        "1393600fd74775f0d19a8ebd282b05349641a8b079c71030bf1bf370c41acef9",
        "25c758d9c7a11a43e72d3ddd7976458330fa9e37f63991457fac99a70253cfba",
    ),
    (
        "3e2240ce35b52e6ce7f2cc4c3e57c03bc1619494256e495dadadb10dcc2675e8",
        "6c70b60bbea45867f1e270af0812137ac64c8931370dae67a4130141f9bbacb1",
    ),
    (
        "65d61dfa58cf932cd60f65f24739d1afe89442e4a3b2e6ea9d65b0865f148901",
        "1241e151a4da26769778a6c8aa5a219ff608c6c31bea49a0558487a102bf6355",
    ),
]


@pytest.mark.spec("PRIV-51")
@pytest.mark.parametrize(("u", "x"), HASH_TO_CURVE)
def test_unhide_is_the_elligator_2_map_of_the_hash_to_curve_vectors(u: str, x: str) -> None:
    field = int(u, 16)
    representative = field if field < 2**254 else P - field
    assert representative < 2**254
    expected = int(x, 16).to_bytes(32, "little")
    assert unhide(representative.to_bytes(32, "little")) == expected


@pytest.mark.spec("PRIV-51")
def test_a_key_pair_is_monocypher_s_and_its_public_key_the_map_of_its_representative() -> None:
    for n in range(20):
        pair = hidden_key_pair(_seed(n))
        assert (pair.hidden, pair.secret) == monocypher.elligator_key_pair(_seed(n))
        assert pair.public == unhide(pair.hidden) == monocypher.elligator_map(pair.hidden)
        assert hidden_key_pair(_seed(n)) == pair  # a seed gives one key pair
    with pytest.raises(ValueError):
        hidden_key_pair(bytes(31))
    with pytest.raises(ValueError):
        unhide(bytes(33))


@pytest.mark.spec("PRIV-51")
def test_the_dirty_public_key_gives_the_same_dh_as_the_clean_one_but_other_bytes() -> None:
    peer = bytes(range(40, 72))
    dirty = 0
    for n in range(64):
        pair = hidden_key_pair(_seed(n))
        clean = public_key(pair.secret)
        # The peer's DH with the dirty key equals ours with its key: X25519 clamps the secret to
        # a multiple of 8, which removes the low-order component.
        assert _dh(peer, pair.public) == _dh(pair.secret, public_key(peer)) == _dh(peer, clean)
        dirty += pair.public != clean
    # A low-order component of 0 has a chance of 1/8: most keys differ from X25519's.
    assert dirty >= 40


@pytest.mark.spec("PRIV-51")
def test_the_top_two_bits_of_a_representative_are_ignored() -> None:
    for n in range(16):
        hidden = hidden_key_pair(_seed(n)).hidden
        for top in range(4):
            changed = hidden[:31] + bytes([hidden[31] & 0x3F | top << 6])
            assert unhide(changed) == unhide(hidden)


@pytest.mark.spec("PRIV-51")
def test_the_reverse_map_of_a_public_key_maps_back_to_it() -> None:
    for n in range(32):
        pair = hidden_key_pair(_seed(n))
        for tweak in range(0, 256, 17):
            representative = monocypher.elligator_rev(pair.public, tweak)
            assert unhide(representative) == pair.public
        # The tweak's low bit picks the sign, its top two bits fill the representative's.
        assert monocypher.elligator_rev(pair.public, 0xC0)[31] >> 6 == 3


def _bit_counts(values: list[bytes]) -> list[int]:
    return [sum(value[i // 8] >> (i % 8) & 1 for value in values) for i in range(256)]


@pytest.mark.spec("PRIV-51")
def test_representatives_look_uniform_in_all_256_bits() -> None:
    count = 4000
    pairs = [hidden_key_pair(_seed(n, "uniform")) for n in range(count)]
    # Each bit is set in about half of them: a binomial(4000, 1/2) has a deviation of 31.6, so
    # 5 deviations (158) fail an honest run with a chance below 2^-20 per bit.
    counts = _bit_counts([pair.hidden for pair in pairs])
    assert all(abs(c - count / 2) < 158 for c in counts), counts
    # The two top bits, which Monocypher fills from the seed, take their four values evenly: a
    # chi-square of 3 degrees of freedom, below 16.27 with a chance of 99.9%.
    tops = [0] * 4
    for pair in pairs:
        tops[pair.hidden[31] >> 6] += 1
    chi_square = sum((seen - count / 4) ** 2 / (count / 4) for seen in tops)
    assert chi_square < 16.27, tops
    # The test can tell: the public keys themselves fail it (the top bit is always 0).
    public_counts = _bit_counts([pair.public for pair in pairs])
    assert public_counts[255] == 0
    assert not all(abs(c - count / 2) < 158 for c in public_counts)


@pytest.mark.spec("PRIV-52")
def test_a_representative_that_begins_with_magic_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = elligator.hidden_key_pair
    seeds: list[bytes] = []

    def first_looks_like_a_frame(seed: bytes) -> HiddenKeyPair:
        seeds.append(seed)
        pair = real(seed)
        if len(seeds) == 1:  # a 2^-32 event, made certain
            return pair._replace(hidden=MAGIC + pair.hidden[len(MAGIC) :])
        return pair

    monkeypatch.setattr(elligator, "hidden_key_pair", first_looks_like_a_frame)
    draws = iter([_seed(1), _seed(2), _seed(3)])
    sizes: list[int] = []

    def draw(size: int) -> bytes:
        sizes.append(size)
        return next(draws)

    pair = draw_hidden_key_pair(draw)
    assert seeds == [_seed(1), _seed(2)] and sizes == [32, 32]
    assert pair == real(_seed(2))
    assert not pair.hidden.startswith(MAGIC)


@pytest.mark.spec("PRIV-51")
def test_hide_and_unhide_a_message() -> None:
    pair = hidden_key_pair(_seed(7))
    message = pair.public + b"tag of sixteen b"
    hidden = hide_message(message, pair)
    assert hidden == pair.hidden + b"tag of sixteen b"
    assert unhide_message(hidden) == message
    with pytest.raises(ValueError):
        hide_message(public_key(pair.secret) + bytes(16), pair)  # not this pair's key


# The handshake with hidden keys.


def _ours(initiator: bool, pair: HiddenKeyPair) -> NoiseHandshake:
    return NoiseHandshake(initiator, FIRST_PROLOGUE, pair.secret, ephemeral_public=pair.public)


@pytest.mark.spec("PRIV-20", "PRIV-21", "PRIV-51")
def test_an_encrypted_first_handshake_between_two_of_ours() -> None:
    assert FIRST_PROLOGUE == b"OBX noise first v1" and len(FIRST_PROLOGUE) == 18
    for n in range(8):
        pair_i, pair_r = hidden_key_pair(_seed(n, "i")), hidden_key_pair(_seed(n, "r"))
        initiator, responder = _ours(True, pair_i), _ours(False, pair_r)
        message1 = initiator.write_message()
        assert message1 == pair_i.public and len(message1) == MESSAGE1_SIZE
        sent1 = hide_message(message1, pair_i)
        assert sent1 == pair_i.hidden  # what travels: the representative only
        assert responder.read_message(unhide(sent1)) == b""
        message2 = responder.write_message()
        assert message2[:32] == pair_r.public and len(message2) == MESSAGE2_SIZE
        sent2 = hide_message(message2, pair_r)
        assert sent2[:32] == pair_r.hidden
        assert initiator.read_message(unhide_message(sent2)) == b""
        assert initiator.handshake_hash == responder.handshake_hash
        i_send, i_receive = initiator.split()
        r_send, r_receive = responder.split()
        assert (i_send.key, i_receive.key) == (r_receive.key, r_send.key)
        assert r_receive.decrypt_with_ad(b"", i_send.encrypt_with_ad(b"", b"hi")) == b"hi"


@pytest.mark.spec("PRIV-51")
def test_a_side_that_hashes_the_clean_key_fails_the_handshake() -> None:
    pair_i, pair_r = hidden_key_pair(_seed(1, "i")), hidden_key_pair(_seed(1, "r"))
    assert pair_i.public != public_key(pair_i.secret)
    initiator = NoiseHandshake(True, FIRST_PROLOGUE, pair_i.secret)  # no ephemeral_public
    responder = _ours(False, pair_r)
    initiator.write_message()
    responder.read_message(unhide(pair_i.hidden))
    with pytest.raises(NoiseError):
        initiator.read_message(responder.write_message())


def _theirs(initiator: bool, prologue: bytes, secret: bytes, public: bytes | None) -> Any:
    """A noiseprotocol connection whose e is ``secret`` with ``public`` as its public key (the
    dirty one), or X25519's when None.

    noiseprotocol has no call to set a public key beside a private one: it computes X25519's.
    Its key pair object keeps the bytes it writes and hashes in ``public_bytes`` and uses only
    the private key for DH, so the test replaces those bytes (an attribute of noiseprotocol
    0.3.1, not its documented interface)."""
    connection = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_prologue(prologue)
    connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, secret)
    if public is not None:
        connection.noise_protocol.keypairs["e"].public_bytes = public
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns that a fixed ephemeral is for tests only
        connection.start_handshake()
    return connection


def _their_pair(initiator: bool, pair: HiddenKeyPair) -> Any:
    return _theirs(initiator, FIRST_PROLOGUE, pair.secret, pair.public)


@pytest.mark.spec("PRIV-20", "PRIV-21", "PRIV-51")
def test_encrypted_first_against_another_implementation_in_both_roles() -> None:
    pair_i, pair_r = hidden_key_pair(_seed(2, "i")), hidden_key_pair(_seed(2, "r"))
    assert pair_i.public != public_key(pair_i.secret)
    assert pair_r.public != public_key(pair_r.secret)
    # Our initiator, their responder.
    ours = _ours(True, pair_i)
    theirs = _their_pair(False, pair_r)
    sent1 = hide_message(ours.write_message(), pair_i)
    theirs.read_message(unhide_message(sent1))
    message2 = bytes(theirs.write_message())
    assert message2[:32] == pair_r.public
    ours.read_message(unhide_message(hide_message(message2, pair_r)))
    assert ours.handshake_hash == theirs.get_handshake_hash()
    send, _ = ours.split()
    assert theirs.decrypt(send.encrypt_with_ad(b"", b"first")) == b"first"
    # Their initiator, our responder.
    theirs = _their_pair(True, pair_i)
    ours = _ours(False, pair_r)
    message1 = bytes(theirs.write_message())
    assert message1 == pair_i.public
    ours.read_message(unhide_message(hide_message(message1, pair_i)))
    theirs.read_message(unhide_message(hide_message(ours.write_message(), pair_r)))
    assert ours.handshake_hash == theirs.get_handshake_hash()
    _, receive = ours.split()
    assert receive.decrypt_with_ad(b"", theirs.encrypt(b"second")) == b"second"


# The decision vectors, checked without the reference.


@pytest.mark.spec("PRIV-51")
def test_the_elligator_vectors_are_monocypher_s_and_agree_in_dh() -> None:
    pairs = cases_of("decision-first.json", "elligator_key_pair")
    assert {int(case["expected"]["hidden"][-2:], 16) >> 6 for case in pairs} == {0, 1, 2, 3}
    for case in pairs:
        seed = bytes.fromhex(case["input"]["seed"])
        expected = {key: bytes.fromhex(value) for key, value in case["expected"].items()}
        hidden, secret = monocypher.elligator_key_pair(seed)
        assert (expected["hidden"], expected["secret"]) == (hidden, secret)
        assert expected["public"] == monocypher.elligator_map(hidden)
        peer = bytes(range(32))
        assert _dh(peer, expected["public"]) == _dh(secret, public_key(peer))
    maps = cases_of("decision-first.json", "elligator_map")
    assert any(int(case["input"]["hidden"][-2:], 16) >= 0xC0 for case in maps)
    for case in maps:
        hidden = bytes.fromhex(case["input"]["hidden"])
        masked = hidden[:31] + bytes([hidden[31] & 0x3F])
        public = monocypher.elligator_map(masked)
        assert case["expected"] == {"public": public.hex()}, case["comment"]


def _their_case(initiator: bool, given: dict[str, Any]) -> Any:
    public = given.get("ephemeral_public")
    return _theirs(
        initiator,
        bytes.fromhex(given["prologue"]),
        bytes.fromhex(given["ephemeral"]),
        None if public is None else bytes.fromhex(public),
    )


def _check_done(theirs: Any, expected: dict[str, Any]) -> None:
    assert theirs.get_handshake_hash().hex() == expected["handshake_hash"]
    assert theirs.noise_protocol.cipher_state_encrypt.k.hex() == expected["send_key"]
    assert theirs.noise_protocol.cipher_state_decrypt.k.hex() == expected["receive_key"]


@pytest.mark.spec("PRIV-20", "PRIV-21", "PRIV-22", "PRIV-51")
def test_the_encrypted_first_noise_initiator_vectors_are_another_implementation_s() -> None:
    cases = cases_of("decision-first.json", "noise_initiator")
    assert any("ephemeral_public" in case["input"] for case in cases)
    for case in cases:
        given, expected = case["input"], case["expected"]
        theirs = _their_case(True, given)
        assert bytes(theirs.write_message()).hex() == expected["message1"], case["comment"]
        if "error" in expected:
            with pytest.raises(InvalidTag):
                theirs.read_message(bytes.fromhex(given["message2"]))
            continue
        theirs.read_message(bytes.fromhex(given["message2"]))
        _check_done(theirs, expected)


@pytest.mark.spec("PRIV-20", "PRIV-21", "PRIV-22", "PRIV-51")
def test_the_encrypted_first_noise_responder_vectors_are_another_implementation_s() -> None:
    cases = cases_of("decision-first.json", "noise_responder")
    assert any("ephemeral_public" in case["input"] for case in cases)
    for case in cases:
        given, expected = case["input"], case["expected"]
        theirs = _their_case(False, given)
        theirs.read_message(bytes.fromhex(given["message1"]))
        if "error" in expected:
            with pytest.raises(ValueError):  # cryptography refuses a DH of zeros
                theirs.write_message()
            continue
        assert bytes(theirs.write_message()).hex() == expected["message2"], case["comment"]
        _check_done(theirs, expected)
