"""The Noise handshake of spec/privacy.md section 3.2: published test vectors, another
implementation (the noiseprotocol package) in both roles, and every failure a peer can cause."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

from obscura_ref.transport import (
    MESSAGE1_SIZE,
    MESSAGE2_SIZE,
    PROTOCOL_NAME,
    REKEY_AFTER,
    CipherState,
    NoiseError,
    NoiseErrorCode,
    NoiseHandshake,
    NoiseUsageError,
    RecordOpener,
    RecordSealer,
    SymmetricState,
    hidden_key_pair,
    public_key,
)

from .vector_cases import cases_of

VECTORS = Path(__file__).parent / "data" / "noise_nn_vectors.json"
INIT_E = bytes(range(1, 33))
RESP_E = bytes(range(33, 65))
PROLOGUE = b"OBX noise v1 test prologue"
KEY = bytes(range(100, 132))


def _vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]
    return vectors


def _theirs(initiator: bool, prologue: bytes, ephemeral: bytes) -> Any:
    """A noiseprotocol connection with a fixed ephemeral key (which it warns about: only a test
    may fix one)."""
    connection = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_prologue(prologue)
    connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connection.start_handshake()
    return connection


def _handshake(
    prologue: bytes = PROLOGUE,
) -> tuple[NoiseHandshake, NoiseHandshake]:
    """Our initiator and our responder, after a complete handshake."""
    initiator = NoiseHandshake(True, prologue, INIT_E)
    responder = NoiseHandshake(False, prologue, RESP_E)
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    return initiator, responder


def _nonce(n: int) -> bytes:
    return bytes(4) + n.to_bytes(8, "little")


# Published vectors.


@pytest.mark.spec("PRIV-20", "PRIV-21")
@pytest.mark.parametrize("index", range(len(_vectors())))
def test_published_vectors_are_reproduced(index: int) -> None:
    vector = _vectors()[index]
    assert vector["protocol_name"] == PROTOCOL_NAME.decode()
    initiator = NoiseHandshake(
        True, bytes.fromhex(vector["init_prologue"]), bytes.fromhex(vector["init_ephemeral"])
    )
    responder = NoiseHandshake(
        False, bytes.fromhex(vector["resp_prologue"]), bytes.fromhex(vector["resp_ephemeral"])
    )
    messages = vector["messages"]
    # The handshake: message 1 from the initiator, message 2 from the responder.
    for (writer, reader), message in zip(
        [(initiator, responder), (responder, initiator)], messages[:2], strict=True
    ):
        payload = bytes.fromhex(message["payload"])
        written = writer.write_message(payload)
        assert written.hex() == message["ciphertext"]
        assert reader.read_message(written) == payload
    assert initiator.complete and responder.complete
    if "handshake_hash" in vector:
        assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert responder.handshake_hash == initiator.handshake_hash
    # Transport messages, alternating from the initiator as the format does.
    i_send, i_receive = initiator.split()
    r_send, r_receive = responder.split()
    for number, message in enumerate(messages[2:]):
        send, receive = (i_send, r_receive) if number % 2 == 0 else (r_send, i_receive)
        payload = bytes.fromhex(message["payload"])
        ciphertext = send.encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == message["ciphertext"]
        assert receive.decrypt_with_ad(b"", ciphertext) == payload
    assert len(messages) > 2


def test_the_vector_file_names_its_source_and_holds_both_published_vectors() -> None:
    document = json.loads(VECTORS.read_text())
    assert "cacophony.txt" in document["source"] and "snow.txt" in document["source"]
    assert len(document["vectors"]) == 2


# Another implementation, in both roles.


@pytest.mark.spec("PRIV-20", "PRIV-21")
def test_our_initiator_against_their_responder() -> None:
    ours = NoiseHandshake(True, PROLOGUE, INIT_E)
    theirs = _theirs(False, PROLOGUE, RESP_E)
    message1 = ours.write_message()
    assert len(message1) == MESSAGE1_SIZE
    assert theirs.read_message(message1) == b""
    message2 = bytes(theirs.write_message())
    assert len(message2) == MESSAGE2_SIZE
    assert ours.read_message(message2) == b""
    assert theirs.handshake_finished and ours.complete
    assert ours.handshake_hash == theirs.get_handshake_hash()
    send, receive = ours.split()
    for text in (b"first", b"", b"x" * 1000):
        assert theirs.decrypt(send.encrypt_with_ad(b"", text)) == text
        assert receive.decrypt_with_ad(b"", theirs.encrypt(text)) == text


@pytest.mark.spec("PRIV-20", "PRIV-21")
def test_their_initiator_against_our_responder() -> None:
    theirs = _theirs(True, PROLOGUE, INIT_E)
    ours = NoiseHandshake(False, PROLOGUE, RESP_E)
    assert ours.read_message(bytes(theirs.write_message())) == b""
    message2 = ours.write_message()
    assert len(message2) == MESSAGE2_SIZE
    assert theirs.read_message(message2) == b""
    assert ours.handshake_hash == theirs.get_handshake_hash()
    send, receive = ours.split()
    for text in (b"first", b"", b"y" * 1000):
        assert receive.decrypt_with_ad(b"", theirs.encrypt(text)) == text
        assert theirs.decrypt(send.encrypt_with_ad(b"", text)) == text


@pytest.mark.spec("PRIV-20")
def test_a_different_prologue_fails_message_2() -> None:
    theirs = _theirs(True, PROLOGUE, INIT_E)
    ours = NoiseHandshake(False, PROLOGUE + b"!", RESP_E)
    ours.read_message(bytes(theirs.write_message()))
    with pytest.raises(InvalidTag):
        theirs.read_message(ours.write_message())
    ours = NoiseHandshake(True, PROLOGUE, INIT_E)
    theirs = _theirs(False, PROLOGUE + b"!", RESP_E)
    theirs.read_message(ours.write_message())
    with pytest.raises(NoiseError) as error:
        ours.read_message(bytes(theirs.write_message()))
    _failed(error)


def _their_record(theirs: Any, plaintext: bytes) -> bytes:
    """A record as a Noise library makes it: two encryptions, the rule of PRIV-25 applied by
    hand after each."""
    out = b""
    for part in (len(plaintext).to_bytes(4, "little"), plaintext):
        out += theirs.encrypt(part)
        state = theirs.noise_protocol.cipher_state_encrypt
        if state.n == REKEY_AFTER:
            theirs.rekey_outbound_cipher()
            state.set_nonce(0)
    return out


def _their_open(theirs: Any, record: bytes) -> bytes:
    """A record opened by a Noise library: two decryptions, the rule of PRIV-25 by hand."""
    state = theirs.noise_protocol.cipher_state_decrypt
    length = int.from_bytes(theirs.decrypt(record[:20]), "little")
    if state.n == REKEY_AFTER:
        theirs.rekey_inbound_cipher()
        state.set_nonce(0)
    assert len(record) == 20 + length + 16
    plaintext: bytes = theirs.decrypt(record[20:])
    if state.n == REKEY_AFTER:
        theirs.rekey_inbound_cipher()
        state.set_nonce(0)
    return plaintext


@pytest.mark.spec("PRIV-24", "PRIV-25")
def test_records_both_ways_with_another_implementation_across_the_rekey() -> None:
    ours = NoiseHandshake(True, PROLOGUE, INIT_E)
    theirs = _theirs(False, PROLOGUE, RESP_E)
    theirs.read_message(ours.write_message())
    ours.read_message(bytes(theirs.write_message()))
    send, receive = ours.split()
    sealer, opener = RecordSealer(send, pad=False), RecordOpener(receive)
    first_key = send.key
    # 600 records each way: the keys are replaced after the 500th.
    for number in range(600):
        frame = number.to_bytes(2, "little") * (number % 7 + 8)
        assert _their_open(theirs, sealer.seal(frame)) == frame
        assert opener.feed(_their_record(theirs, frame)) == [frame]
    assert send.key != first_key
    assert send.nonce == receive.nonce == 200  # 100 records into the second key
    assert theirs.noise_protocol.cipher_state_encrypt.n == 200


# The primitives as Noise defines them, checked against the cryptography package directly.


@pytest.mark.spec("PRIV-24")
def test_encrypt_uses_four_zero_bytes_and_the_little_endian_counter() -> None:
    cipher = CipherState()
    cipher.initialize_key(KEY)
    cipher.set_nonce(0x0102_0304_0506)
    ciphertext = cipher.encrypt_with_ad(b"ad", b"text")
    assert ciphertext == ChaCha20Poly1305(KEY).encrypt(_nonce(0x0102_0304_0506), b"text", b"ad")
    assert cipher.nonce == 0x0102_0304_0507
    cipher.set_nonce(0x0102_0304_0506)
    assert cipher.decrypt_with_ad(b"ad", ciphertext) == b"text"
    with pytest.raises(NoiseError):
        cipher.decrypt_with_ad(b"other ad", ciphertext)
    assert cipher.nonce == 0x0102_0304_0507  # a failed decryption does not take a nonce


@pytest.mark.spec("PRIV-25")
def test_rekey_is_the_first_32_bytes_of_encrypting_zeros_under_the_last_nonce() -> None:
    cipher = CipherState()
    cipher.initialize_key(KEY)
    cipher.set_nonce(7)
    cipher.rekey()
    expected = ChaCha20Poly1305(KEY).encrypt(_nonce(2**64 - 1), bytes(32), b"")[:32]
    assert cipher.key == expected and cipher.nonce == 7  # Noise's Rekey keeps n
    assert cipher.encrypt_with_ad(b"", b"t") == ChaCha20Poly1305(expected).encrypt(
        _nonce(7), b"t", b""
    )


def test_without_a_key_a_cipher_state_passes_text_through() -> None:
    cipher = CipherState()
    cipher.initialize_key(None)
    assert not cipher.has_key()
    assert cipher.encrypt_with_ad(b"ad", b"text") == b"text"
    assert cipher.decrypt_with_ad(b"ad", b"text") == b"text"
    assert cipher.nonce == 0
    with pytest.raises(NoiseUsageError):
        cipher.rekey()


def test_the_last_nonce_is_never_used() -> None:
    cipher = CipherState()
    cipher.initialize_key(KEY)
    cipher.set_nonce(2**64 - 2)
    cipher.encrypt_with_ad(b"", b"")
    with pytest.raises(NoiseUsageError):
        cipher.encrypt_with_ad(b"", b"")


@pytest.mark.spec("PRIV-20")
def test_the_protocol_name_of_32_bytes_is_the_first_hash_unhashed() -> None:
    assert len(PROTOCOL_NAME) == 32
    assert SymmetricState(PROTOCOL_NAME).get_handshake_hash() == PROTOCOL_NAME
    assert SymmetricState(b"short").get_handshake_hash() == b"short" + bytes(27)


def test_public_key_is_x25519s() -> None:
    expected = X25519PrivateKey.from_private_bytes(INIT_E).public_key().public_bytes_raw()
    assert public_key(INIT_E) == expected
    assert NoiseHandshake(True, b"", INIT_E).write_message() == expected


@pytest.mark.spec("PRIV-21")
def test_split_gives_the_initiator_the_first_key_to_send_and_the_responder_the_reverse() -> None:
    initiator, responder = _handshake()
    i_send, i_receive = initiator.split()
    r_send, r_receive = responder.split()
    assert i_send.key == r_receive.key and i_receive.key == r_send.key
    assert i_send.key != i_receive.key
    # noiseprotocol's initiator sends with the first of Split's pair, as PRIV-21 says.
    theirs = _theirs(True, PROLOGUE, INIT_E)
    ours = NoiseHandshake(False, PROLOGUE, RESP_E)
    ours.read_message(bytes(theirs.write_message()))
    theirs.read_message(ours.write_message())
    send, receive = ours.split()
    assert receive.key == theirs.noise_protocol.cipher_state_encrypt.k == i_send.key
    assert send.key == theirs.noise_protocol.cipher_state_decrypt.k == i_receive.key
    assert ours.handshake_hash == initiator.handshake_hash == responder.handshake_hash


# Failures a peer can cause (PRIV-22).


def _failed(error: pytest.ExceptionInfo[NoiseError]) -> None:
    assert error.value.code is NoiseErrorCode.NOISE_FAILED
    assert error.value.code.value == "noise_failed" and error.value.requirement == "PRIV-22"


@pytest.mark.spec("PRIV-22")
@pytest.mark.parametrize("position", [0, 31, 32, 47])
def test_a_tampered_message_2_fails(position: int) -> None:
    initiator = NoiseHandshake(True, PROLOGUE, INIT_E)
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    responder.read_message(initiator.write_message())
    message2 = bytearray(responder.write_message())
    message2[position] ^= 0x01
    with pytest.raises(NoiseError) as error:
        initiator.read_message(bytes(message2))
    _failed(error)
    assert not initiator.complete  # a failed machine is dead
    with pytest.raises(NoiseUsageError, match="already failed"):
        initiator.read_message(bytes(message2))
    with pytest.raises(NoiseUsageError):
        initiator.split()


@pytest.mark.spec("PRIV-22")
@pytest.mark.parametrize(
    "low_order",
    [
        bytes(32),
        (1).to_bytes(32, "little"),
        # A point of order 8 (it appears in many X25519 implementations' tests).
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],
)
def test_a_low_order_key_in_message_1_fails_the_responder(low_order: bytes) -> None:
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    assert responder.read_message(low_order) == b""  # e is only read: ee comes with message 2
    with pytest.raises(NoiseError) as error:
        responder.write_message()
    _failed(error)
    assert not responder.complete  # a failed machine is dead
    with pytest.raises(NoiseUsageError, match="already failed"):
        responder.write_message()


@pytest.mark.spec("PRIV-22")
def test_a_low_order_key_in_message_2_fails_the_initiator() -> None:
    initiator = NoiseHandshake(True, PROLOGUE, INIT_E)
    initiator.write_message()
    with pytest.raises(NoiseError) as error:
        initiator.read_message(bytes(MESSAGE2_SIZE))
    _failed(error)
    assert "gives zeros" in error.value.detail


@pytest.mark.spec("PRIV-22")
@pytest.mark.parametrize("size", [0, 31, 32, 47])
def test_a_message_2_too_short_fails(size: int) -> None:
    initiator = NoiseHandshake(True, PROLOGUE, INIT_E)
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    responder.read_message(initiator.write_message())
    with pytest.raises(NoiseError) as error:
        initiator.read_message(responder.write_message()[:size])
    _failed(error)
    assert "bytes, expected 48" in error.value.detail


@pytest.mark.spec("PRIV-22")
@pytest.mark.parametrize("size", [0, 31])
def test_a_message_1_too_short_fails(size: int) -> None:
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    with pytest.raises(NoiseError) as error:
        responder.read_message(NoiseHandshake(True, PROLOGUE, INIT_E).write_message()[:size])
    _failed(error)


@pytest.mark.spec("PRIV-22")
def test_a_message_longer_than_noise_allows_fails() -> None:
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    with pytest.raises(NoiseError) as error:
        responder.read_message(bytes(65536))
    _failed(error)


def test_a_payload_round_trips_in_either_message() -> None:
    initiator = NoiseHandshake(True, PROLOGUE, INIT_E)
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    assert responder.read_message(initiator.write_message(b"one")) == b"one"
    assert initiator.read_message(responder.write_message(b"two")) == b"two"
    with pytest.raises(NoiseUsageError):
        NoiseHandshake(True, PROLOGUE, INIT_E).write_message(bytes(65535 - 31))


# Calls out of turn: the caller's bugs.


def test_calls_out_of_turn_raise_usage_errors() -> None:
    initiator = NoiseHandshake(True, PROLOGUE, INIT_E)
    responder = NoiseHandshake(False, PROLOGUE, RESP_E)
    with pytest.raises(NoiseUsageError):
        initiator.read_message(bytes(MESSAGE2_SIZE))  # the initiator writes first
    with pytest.raises(NoiseUsageError):
        responder.write_message()  # the responder reads first
    for early in (initiator, responder):
        with pytest.raises(NoiseUsageError):
            early.split()
        with pytest.raises(NoiseUsageError):
            _ = early.handshake_hash
    message1 = initiator.write_message()
    with pytest.raises(NoiseUsageError):
        initiator.write_message()  # twice
    responder.read_message(message1)
    with pytest.raises(NoiseUsageError):
        responder.read_message(message1)
    initiator.read_message(responder.write_message())
    for done in (initiator, responder):
        with pytest.raises(NoiseUsageError):
            done.write_message()
        with pytest.raises(NoiseUsageError):
            done.read_message(bytes(MESSAGE2_SIZE))
        done.split()
        with pytest.raises(NoiseUsageError):
            done.split()  # two holders of one key would reuse its nonces
    with pytest.raises(ValueError):
        NoiseHandshake(True, PROLOGUE, bytes(31))


# ephemeral_public: the public key written and hashed for e (the encrypted-first mode).


@pytest.mark.spec("PRIV-20", "PRIV-21")
def test_ephemeral_public_equal_to_x25519_s_changes_nothing() -> None:
    default_i, _ = _handshake()
    initiator = NoiseHandshake(True, PROLOGUE, INIT_E, ephemeral_public=public_key(INIT_E))
    responder = NoiseHandshake(False, PROLOGUE, RESP_E, ephemeral_public=public_key(RESP_E))
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    assert initiator.handshake_hash == default_i.handshake_hash == responder.handshake_hash
    assert [c.key for c in initiator.split()] == [c.key for c in default_i.split()]


@pytest.mark.spec("PRIV-51")
def test_ephemeral_public_is_what_each_role_writes_and_hashes() -> None:
    pair_i = hidden_key_pair(bytes(range(32)))
    pair_r = hidden_key_pair(bytes(range(1, 33)))
    assert pair_i.public != public_key(pair_i.secret)  # a dirty key: other bytes, same DH
    initiator = NoiseHandshake(True, PROLOGUE, pair_i.secret, ephemeral_public=pair_i.public)
    responder = NoiseHandshake(False, PROLOGUE, pair_r.secret, ephemeral_public=pair_r.public)
    message1 = initiator.write_message()
    assert message1 == pair_i.public
    responder.read_message(message1)
    message2 = responder.write_message()
    assert message2[:32] == pair_r.public
    initiator.read_message(message2)
    assert initiator.handshake_hash == responder.handshake_hash
    # The hash covers the bytes written: with X25519's keys instead, another hash.
    clean_i = NoiseHandshake(True, PROLOGUE, pair_i.secret)
    clean_r = NoiseHandshake(False, PROLOGUE, pair_r.secret)
    clean_r.read_message(clean_i.write_message())
    clean_i.read_message(clean_r.write_message())
    assert clean_i.handshake_hash != initiator.handshake_hash
    # The DH is the same, and in NN only the DH feeds the keys of Split: the hash alone (and
    # the tag of message 2, checked against it) tells the two apart.
    assert [c.key for c in clean_i.split()] == [c.key for c in initiator.split()]


def test_ephemeral_public_has_32_bytes() -> None:
    with pytest.raises(ValueError):
        NoiseHandshake(True, PROLOGUE, INIT_E, ephemeral_public=bytes(31))


# The conformance vectors, checked against another implementation.


@pytest.mark.spec("PRIV-20", "PRIV-21", "PRIV-22")
def test_the_noise_initiator_vectors_are_another_implementation_s() -> None:
    cases = cases_of("decision-transport.json", "noise_initiator")
    assert cases
    for case in cases:
        given, expected = case["input"], case["expected"]
        theirs = _theirs(True, bytes.fromhex(given["prologue"]), bytes.fromhex(given["ephemeral"]))
        assert bytes(theirs.write_message()).hex() == expected["message1"]
        if "error" in expected:
            with pytest.raises((InvalidTag, ValueError)):  # a bad tag, or a DH of zeros
                theirs.read_message(bytes.fromhex(given["message2"]))
            continue
        theirs.read_message(bytes.fromhex(given["message2"]))
        assert theirs.get_handshake_hash().hex() == expected["handshake_hash"]
        assert theirs.noise_protocol.cipher_state_encrypt.k.hex() == expected["send_key"]
        assert theirs.noise_protocol.cipher_state_decrypt.k.hex() == expected["receive_key"]


@pytest.mark.spec("PRIV-20", "PRIV-21", "PRIV-22")
def test_the_noise_responder_vectors_are_another_implementation_s() -> None:
    cases = cases_of("decision-transport.json", "noise_responder")
    assert cases
    for case in cases:
        given, expected = case["input"], case["expected"]
        theirs = _theirs(False, bytes.fromhex(given["prologue"]), bytes.fromhex(given["ephemeral"]))
        theirs.read_message(bytes.fromhex(given["message1"]))
        if "error" in expected:
            with pytest.raises(ValueError):  # cryptography refuses a DH of zeros
                theirs.write_message()
            continue
        assert bytes(theirs.write_message()).hex() == expected["message2"]
        assert theirs.get_handshake_hash().hex() == expected["handshake_hash"]
        assert theirs.noise_protocol.cipher_state_encrypt.k.hex() == expected["send_key"]
        assert theirs.noise_protocol.cipher_state_decrypt.k.hex() == expected["receive_key"]
