-- Wireshark dissector for the Obscura wire protocol (spec/wire.md).
--
-- Frames are reassembled across TCP segments. Each frame is checked in the order of
-- spec/wire.md section 2.1 and its payload in the order of WIRE-34; the first failing check
-- is reported as expert info named by its error code (section 8), and, as a receiver must
-- (WIRE-14), nothing after it in that direction is decoded, because the frame boundaries that
-- follow are unknown. After two handshakes that both set EncryptedTransport (0x80) the rest of
-- each direction is shown as encrypted records (spec/privacy.md PRIV-11), never parsed.

local obscura = Proto("obscura", "Obscura P2P Protocol")

local MAGIC = "OBX\0"
local HEADER_SIZE = 16
local MAX_PAYLOAD = 10 * 1024 * 1024
local MAX_HANDSHAKE_PAYLOAD = 1024
local MAX_USER_AGENT = 256
local ENCRYPTED_TRANSPORT = 0x80

-- obscura_ref/wire/registry.py MessageType
local TYPE_NAMES = {
    [0x01] = "Handshake", [0x02] = "Ping", [0x03] = "Pong", [0x04] = "GetBlocks",
    [0x05] = "Blocks", [0x06] = "GetTransactions", [0x07] = "Transactions", [0x08] = "Inv",
    [0x09] = "GetData", [0x0a] = "NotFound", [0x0b] = "MemPool", [0x0c] = "Alert",
    [0x0d] = "Reject", [0x0e] = "FilterLoad", [0x0f] = "FilterAdd", [0x10] = "FilterClear",
    [0x11] = "MerkleBlock", [0x12] = "BlockAnnouncement",
    [0x13] = "BlockAnnouncementResponse", [0x14] = "GetCompactBlock",
    [0x15] = "CompactBlock", [0x16] = "GetBlockTransactions", [0x17] = "BlockTransactions",
    [0x80] = "Disconnect", [0x81] = "Dummy",
}

-- obscura_ref/machines/reasons.py CloseReason: code -> label
local REASON_NAMES = {
    [1] = "requested", [2] = "shutting_down", [3] = "connection_limit", [4] = "banned",
    [5] = "evicted", [6] = "rotated", [7] = "temporary_done", [8] = "duplicate_connection",
    [10] = "invalid_message",
    [11] = "unexpected_message", [12] = "incompatible_version", [13] = "self_connection",
    [14] = "encryption_required", [20] = "handshake_timeout", [21] = "ping_timeout",
    [22] = "inactivity_timeout", [23] = "connect_timeout", [24] = "temporary_timeout",
    [30] = "peer_disconnected", [31] = "peer_closed", [32] = "network_error",
    [33] = "send_queue_full", [34] = "send_stalled", [35] = "memory_budget",
    [40] = "noise_failed", [41] = "noise_out_of_place", [42] = "record_forged",
    [43] = "record_replayed", [44] = "record_reordered", [45] = "record_truncated",
    [46] = "record_too_large", [47] = "record_not_one_frame", [48] = "no_garbage_terminator",
    [50] = "proxy_auth_failed", [51] = "proxy_refused", [52] = "proxy_garbage",
    [53] = "proxy_closed",
}

-- Tables 5.1 and 5.2 of spec/wire.md: {field suffix, registry name, bit}
local FEATURES = {
    { "basic_transactions", "BasicTransactions", 0x01 },
    { "privacy_features", "PrivacyFeatures", 0x02 },
    { "dandelion", "Dandelion", 0x04 },
    { "compact_blocks", "CompactBlocks", 0x08 },
    { "tor_support", "TorSupport", 0x10 },
    { "i2p_support", "I2PSupport", 0x20 },
}
local PRIVACY_FEATURES = {
    { "transaction_obfuscation", "TransactionObfuscation", 0x01 },
    { "stealth_addressing", "StealthAddressing", 0x02 },
    { "confidential_transactions", "ConfidentialTransactions", 0x04 },
    { "zero_knowledge_proofs", "ZeroKnowledgeProofs", 0x08 },
    { "dandelion_plus_plus", "DandelionPlusPlus", 0x10 },
    { "tor", "Tor", 0x20 },
    { "i2p", "I2P", 0x40 },
    { "encrypted_transport", "EncryptedTransport", 0x80 },
}

local f = {
    magic = ProtoField.bytes("obscura.magic", "Magic"),
    type = ProtoField.uint32("obscura.type", "Message type", base.HEX, TYPE_NAMES),
    length = ProtoField.uint32("obscura.length", "Payload length", base.DEC),
    checksum = ProtoField.bytes("obscura.checksum", "Checksum"),
    checksum_ok = ProtoField.bool("obscura.checksum_ok", "Checksum correct"),
    hs_version = ProtoField.uint32("obscura.handshake.version", "Version", base.DEC),
    hs_timestamp = ProtoField.uint64("obscura.handshake.timestamp", "Timestamp", base.DEC),
    hs_features = ProtoField.uint32("obscura.handshake.features", "Features", base.HEX),
    hs_privacy = ProtoField.uint32("obscura.handshake.privacy_features", "Privacy features",
        base.HEX),
    hs_ua_length = ProtoField.uint16("obscura.handshake.user_agent_length",
        "User agent length", base.DEC),
    hs_user_agent = ProtoField.string("obscura.handshake.user_agent", "User agent",
        base.UNICODE),
    hs_block_hash = ProtoField.bytes("obscura.handshake.best_block_hash", "Best block hash"),
    hs_block_height = ProtoField.uint64("obscura.handshake.best_block_height",
        "Best block height", base.DEC),
    hs_nonce = ProtoField.uint64("obscura.handshake.nonce", "Nonce", base.DEC),
    ping_nonce = ProtoField.uint64("obscura.ping.nonce", "Nonce", base.DEC),
    pong_nonce = ProtoField.uint64("obscura.pong.nonce", "Nonce", base.DEC),
    reason = ProtoField.uint16("obscura.disconnect.reason", "Reason", base.DEC, REASON_NAMES),
    padding = ProtoField.bytes("obscura.padding", "Padding"),
    payload = ProtoField.bytes("obscura.payload", "Payload"),
    encrypted = ProtoField.bytes("obscura.encrypted", "Encrypted records"),
    undecoded = ProtoField.bytes("obscura.undecoded", "Not decoded (after an error)"),
}
local feature_fields, privacy_fields = {}, {}
for _, flag in ipairs(FEATURES) do
    local field = ProtoField.bool("obscura.handshake.features." .. flag[1], flag[2], 32, nil,
        flag[3])
    feature_fields[#feature_fields + 1] = field
    f["features_" .. flag[1]] = field
end
for _, flag in ipairs(PRIVACY_FEATURES) do
    local field = ProtoField.bool("obscura.handshake.privacy_features." .. flag[1], flag[2], 32,
        nil, flag[3])
    privacy_fields[#privacy_fields + 1] = field
    f["privacy_" .. flag[1]] = field
end
local field_list = {}
for _, field in pairs(f) do field_list[#field_list + 1] = field end
obscura.fields = field_list

-- One expert item per error code of spec/wire.md section 8 that a capture can show.
-- truncated_frame is not among them: a frame cut off by the end of the capture stays a
-- pending TCP reassembly, indistinguishable here from a frame still on its way.
local ERROR_CODES = {
    "bad_magic", "unknown_message_type", "payload_too_large", "handshake_too_large",
    "bad_checksum", "payload_truncated", "user_agent_too_long", "user_agent_not_utf8",
}
local experts = {}
for _, code in ipairs(ERROR_CODES) do
    experts[code] = ProtoExpert.new("obscura.error." .. code, code, expert.group.MALFORMED,
        expert.severity.ERROR)
end
local expert_encrypted = ProtoExpert.new("obscura.encrypted_transport",
    "encrypted transport negotiated: the rest of this direction is sealed records",
    expert.group.SECURITY, expert.severity.NOTE)
local expert_list = { expert_encrypted }
for _, code in ipairs(ERROR_CODES) do expert_list[#expert_list + 1] = experts[code] end
obscura.experts = expert_list

obscura.prefs.ports = Pref.range("TCP ports", "", "TCP ports decoded as Obscura", 65535)
obscura.prefs.verify_checksum = Pref.bool("Verify checksums", true,
    "Compute SHA256d of each payload (pure Lua: slow on multi-megabyte payloads)")

----------------------------------------------------------------------------------------------
-- SHA-256 in Lua 5.2 with bit32: Wireshark's Lua offers no hash function (no GcryptMd).

local band, bor, bxor, bnot = bit32.band, bit32.bor, bit32.bxor, bit32.bnot
local rrotate, rshift = bit32.rrotate, bit32.rshift
local K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
}

local function sha256(message)
    local length = #message
    local tail = "\128" .. string.rep("\0", (55 - length) % 64)
    local bits = length * 8
    local size = ""
    for i = 7, 0, -1 do
        size = size .. string.char(math.floor(bits / 2 ^ (8 * i)) % 256)
    end
    message = message .. tail .. size
    local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
        0x1f83d9ab, 0x5be0cd19 }
    local w = {}
    for block = 1, #message, 64 do
        for i = 0, 15 do
            local a, b, c, d = message:byte(block + 4 * i, block + 4 * i + 3)
            w[i] = ((a * 256 + b) * 256 + c) * 256 + d
        end
        for i = 16, 63 do
            local x, y = w[i - 15], w[i - 2]
            local s0 = bxor(rrotate(x, 7), rrotate(x, 18), rshift(x, 3))
            local s1 = bxor(rrotate(y, 17), rrotate(y, 19), rshift(y, 10))
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) % 4294967296
        end
        local a, b, c, d, e, f_, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
        for i = 0, 63 do
            local s1 = bxor(rrotate(e, 6), rrotate(e, 11), rrotate(e, 25))
            local ch = bxor(band(e, f_), band(bnot(e), g))
            local t1 = hh + s1 + ch + K[i + 1] + w[i]
            local s0 = bxor(rrotate(a, 2), rrotate(a, 13), rrotate(a, 22))
            local maj = bxor(band(a, b), band(a, c), band(b, c))
            hh, g, f_, e = g, f_, e, (d + t1) % 4294967296
            d, c, b, a = c, b, a, (t1 + s0 + maj) % 4294967296
        end
        h[1], h[2], h[3], h[4] = (h[1] + a) % 4294967296, (h[2] + b) % 4294967296,
            (h[3] + c) % 4294967296, (h[4] + d) % 4294967296
        h[5], h[6], h[7], h[8] = (h[5] + e) % 4294967296, (h[6] + f_) % 4294967296,
            (h[7] + g) % 4294967296, (h[8] + hh) % 4294967296
    end
    local out = {}
    for i = 1, 8 do
        local v = h[i]
        out[i] = string.char(rshift(v, 24), band(rshift(v, 16), 255), band(rshift(v, 8), 255),
            band(v, 255))
    end
    return table.concat(out)
end

local function checksum(payload)
    return sha256(sha256(payload)):sub(1, 4)
end

-- RFC 3629 UTF-8, as Python's strict decoder reads it: no overlong forms, no surrogates,
-- nothing above U+10FFFF (WIRE-44).
local function valid_utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local count, low, high = 0, 0x80, 0xbf
        if c < 0x80 then
            count = 0
        elseif c >= 0xc2 and c <= 0xdf then
            count = 1
        elseif c >= 0xe0 and c <= 0xef then
            count = 2
            if c == 0xe0 then low = 0xa0 elseif c == 0xed then high = 0x9f end
        elseif c >= 0xf0 and c <= 0xf4 then
            count = 3
            if c == 0xf0 then low = 0x90 elseif c == 0xf4 then high = 0x8f end
        else
            return false
        end
        if i + count > n then return false end
        for j = 1, count do
            local cc = s:byte(i + j)
            -- only the first continuation byte has the narrowed range
            local lo, hi = 0x80, 0xbf
            if j == 1 then lo, hi = low, high end
            if cc < lo or cc > hi then return false end
        end
        i = i + count + 1
    end
    return true
end

----------------------------------------------------------------------------------------------
-- Per-direction state of each TCP stream. A place in a direction is (packet number, the
-- number of this dissector's call within that packet, offset): comparing places, rather than
-- keeping flags, gives the same answer when a packet is dissected again out of order (a click
-- in the GUI) as in the first, in-order pass.

local tcp_stream_field = Field.new("tcp.stream")
local tcp_srcport_field = Field.new("tcp.srcport")
local tcp_dstport_field = Field.new("tcp.dstport")

local streams = {}
local call_packet, call_index = -1, 0

function obscura.init()
    streams = {}
    call_packet, call_index = -1, 0
end

local function before(p, q) -- place p comes before place q
    if p[1] ~= q[1] then return p[1] < q[1] end
    if p[2] ~= q[2] then return p[2] < q[2] end
    return p[3] < q[3]
end

local function direction_state(pinfo)
    local stream = tcp_stream_field()
    local key = stream and stream.value or -1
    local src, dst = tcp_srcport_field(), tcp_dstport_field()
    local dir = tostring(src and src.value or pinfo.src_port) .. ">" ..
        tostring(dst and dst.value or pinfo.dst_port)
    local back = tostring(dst and dst.value or pinfo.dst_port) .. ">" ..
        tostring(src and src.value or pinfo.src_port)
    local s = streams[key]
    if not s then
        s = {}
        streams[key] = s
    end
    s[dir] = s[dir] or {}
    s[back] = s[back] or {}
    return s[dir], s[back]
end

----------------------------------------------------------------------------------------------

local function add_flags(tree, tvb_range, fields)
    for _, field in ipairs(fields) do tree:add_le(field, tvb_range) end
end

-- Decode a defined payload (the frame has passed its checksum). Returns the error code of the
-- first failing check of WIRE-34, or nil, and the handshake's privacy features when it is one.
local function dissect_payload(tvb, tree, start, length, code)
    local payload = tvb(start, length)
    local function truncated()
        tree:add_proto_expert_info(experts.payload_truncated)
        return "payload_truncated"
    end
    local defined
    local privacy
    if code == 0x01 then
        if length < 22 then return truncated() end
        tree:add_le(f.hs_version, tvb(start, 4))
        tree:add_le(f.hs_timestamp, tvb(start + 4, 8))
        local features = tree:add_le(f.hs_features, tvb(start + 12, 4))
        add_flags(features, tvb(start + 12, 4), feature_fields)
        local priv = tree:add_le(f.hs_privacy, tvb(start + 16, 4))
        add_flags(priv, tvb(start + 16, 4), privacy_fields)
        privacy = tvb(start + 16, 4):le_uint()
        local ua_length = tvb(start + 20, 2):le_uint()
        local ua_item = tree:add_le(f.hs_ua_length, tvb(start + 20, 2))
        if ua_length > MAX_USER_AGENT then
            ua_item:add_proto_expert_info(experts.user_agent_too_long)
            return "user_agent_too_long"
        end
        if length < 22 + ua_length then return truncated() end
        local ua_bytes = ua_length > 0 and tvb(start + 22, ua_length):raw() or ""
        if not valid_utf8(ua_bytes) then
            local item = ua_length > 0 and tree:add(tvb(start + 22, ua_length), "User agent")
                or tree
            item:add_proto_expert_info(experts.user_agent_not_utf8)
            return "user_agent_not_utf8"
        end
        if ua_length > 0 then
            tree:add(f.hs_user_agent, tvb(start + 22, ua_length), ua_bytes)
        else
            tree:add(f.hs_user_agent, "")
        end
        local rest = start + 22 + ua_length
        if length < 70 + ua_length then return truncated() end
        tree:add(f.hs_block_hash, tvb(rest, 32))
        tree:add_le(f.hs_block_height, tvb(rest + 32, 8))
        tree:add_le(f.hs_nonce, tvb(rest + 40, 8))
        defined = 70 + ua_length
    elseif code == 0x02 or code == 0x03 then
        if length < 8 then return truncated() end
        tree:add_le(code == 0x02 and f.ping_nonce or f.pong_nonce, tvb(start, 8))
        defined = 8
    elseif code == 0x80 then
        if length < 2 then return truncated() end
        tree:add_le(f.reason, tvb(start, 2))
        defined = 2
    else
        if length > 0 then tree:add(f.payload, payload) end
        return nil
    end
    if length > defined then tree:add(f.padding, tvb(start + defined, length - defined)) end
    return nil, privacy
end

-- Dissect one frame at offset. Returns the bytes it took (0 when more are needed, with how
-- many more), or -1 after an error, and the handshake's privacy features.
local function dissect_frame(tvb, pinfo, root, offset)
    local available = tvb:len() - offset
    local magic_length = math.min(available, 4)
    for i = 0, magic_length - 1 do
        if tvb(offset + i, 1):uint() ~= MAGIC:byte(i + 1) then -- WIRE-5: byte by byte
            local tree = root:add(obscura, tvb(offset, magic_length))
            tree:add(f.magic, tvb(offset, magic_length))
            tree:add_proto_expert_info(experts.bad_magic)
            return -1
        end
    end
    -- While the magic is incomplete each next segment is checked as it comes (WIRE-5), not
    -- only once the whole header is there.
    if available < 4 then return 0, DESEGMENT_ONE_MORE_SEGMENT end
    if available < HEADER_SIZE then return 0, HEADER_SIZE - available end
    local code = tvb(offset + 4, 4):le_uint()
    local length = tvb(offset + 8, 4):le_uint()
    local name = TYPE_NAMES[code]
    -- The header's checks need the header alone (WIRE-6 to WIRE-8): made before waiting for
    -- the payload, so a huge announced length is not reassembled.
    local header_ok = name and length <= MAX_PAYLOAD
        and not (code == 0x01 and length > MAX_HANDSHAKE_PAYLOAD)
    if header_ok and available < HEADER_SIZE + length then
        return 0, HEADER_SIZE + length - available
    end
    local tree = root:add(obscura, tvb(offset, header_ok and HEADER_SIZE + length or HEADER_SIZE))
    tree:add(f.magic, tvb(offset, 4))
    local type_item = tree:add_le(f.type, tvb(offset + 4, 4))
    local length_item = tree:add_le(f.length, tvb(offset + 8, 4))
    local checksum_item = tree:add(f.checksum, tvb(offset + 12, 4))
    if not name then
        type_item:add_proto_expert_info(experts.unknown_message_type)
        return -1
    end
    if length > MAX_PAYLOAD then
        length_item:add_proto_expert_info(experts.payload_too_large)
        return -1
    end
    if not header_ok then
        length_item:add_proto_expert_info(experts.handshake_too_large)
        return -1
    end
    tree:append_text(", " .. name)
    pinfo.cols.info:append(name .. " ")
    if obscura.prefs.verify_checksum then
        local payload = length > 0 and tvb(offset + HEADER_SIZE, length):raw() or ""
        local ok = checksum(payload) == tvb(offset + 12, 4):raw()
        checksum_item:add(f.checksum_ok, ok):set_generated()
        if not ok then
            checksum_item:add_proto_expert_info(experts.bad_checksum)
            return -1
        end
    end
    local err, privacy = dissect_payload(tvb, tree, offset + HEADER_SIZE, length, code)
    if err then return -1 end
    return HEADER_SIZE + length, privacy
end

local function dissect(tvb, pinfo, root)
    if pinfo.number ~= call_packet then call_packet, call_index = pinfo.number, 0 end
    call_index = call_index + 1
    local here, back = direction_state(pinfo)
    local first_pass = not pinfo.visited
    pinfo.cols.protocol = "Obscura"
    if call_index == 1 then pinfo.cols.info:set("") end
    local offset = 0
    while offset < tvb:len() do
        local place = { pinfo.number, call_index, offset }
        if here.dead and not before(place, here.dead) then
            root:add(obscura, tvb(offset)):add(f.undecoded, tvb(offset))
            return tvb:len()
        end
        if first_pass and here.encrypted and here.encrypted.pending
                and not before(place, here.encrypted) then
            here.encrypted = place
        end
        if here.encrypted and not before(place, here.encrypted) then
            -- The Noise message's place may hold a Disconnect frame instead (PRIV-37); a Noise
            -- key never begins with MAGIC (PRIV-33). Only that exact place is tried.
            local at_start = here.encrypted[1] == place[1] and here.encrypted[2] == place[2]
                and here.encrypted[3] == place[3]
            if not (at_start and tvb:len() - offset >= 4 and tvb(offset, 4):raw() == MAGIC) then
                local item = root:add(obscura, tvb(offset))
                item:add(f.encrypted, tvb(offset))
                item:add_proto_expert_info(expert_encrypted)
                pinfo.cols.info:append("Encrypted records ")
                return tvb:len()
            end
        end
        local taken, extra = dissect_frame(tvb, pinfo, root, offset)
        if taken == 0 then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = extra
            return tvb:len()
        end
        if taken < 0 then
            if first_pass then here.dead = { pinfo.number, call_index, offset + 1 } end
            pinfo.cols.info:append("[error] ")
            return tvb:len()
        end
        offset = offset + taken
        if first_pass then
            if here.encrypted and not before({ pinfo.number, call_index, offset - taken },
                    here.encrypted) then
                -- a frame at the Noise place (PRIV-37): the records begin after it, if ever
                here.encrypted = { pinfo.number, call_index, offset }
            elseif extra and here.privacy == nil then
                here.privacy = extra
                if back.privacy and band(extra, ENCRYPTED_TRANSPORT) ~= 0
                        and band(back.privacy, ENCRYPTED_TRANSPORT) ~= 0 then
                    -- PRIV-11: each side's records begin right after its own handshake
                    here.encrypted = { pinfo.number, call_index, offset }
                    -- the other side's handshake came in an earlier packet: its records
                    -- begin with its next bytes, whose exact place is fixed when they come
                    back.encrypted = { pinfo.number + 1, 0, 0, pending = true }
                end
            end
        end
    end
    return offset
end

function obscura.dissector(tvb, pinfo, root)
    return dissect(tvb, pinfo, root)
end

-- Heuristic: the magic (as far as it has arrived) at the start of a stream, and a registered
-- type when the header is there; the conversation is then Obscura's in both directions.
local tcp_seq_field = Field.new("tcp.seq")
local function heuristic(tvb, pinfo, root)
    local seq = tcp_seq_field()
    if seq and seq.value ~= 1 then return false end
    local n = math.min(tvb:len(), 4)
    if n == 0 or tvb(0, n):raw() ~= MAGIC:sub(1, n) then return false end
    if tvb:len() >= 8 and not TYPE_NAMES[tvb(4, 4):le_uint()] then return false end
    pinfo.conversation = obscura
    dissect(tvb, pinfo, root)
    return true
end
obscura:register_heuristic("tcp", heuristic)

local tcp_port_table = DissectorTable.get("tcp.port")
tcp_port_table:add_for_decode_as(obscura)
local registered_ports = ""
function obscura.prefs_changed()
    if registered_ports ~= "" then tcp_port_table:remove(registered_ports, obscura) end
    registered_ports = obscura.prefs.ports
    if registered_ports ~= "" then tcp_port_table:add(registered_ports, obscura) end
end
