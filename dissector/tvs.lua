-- Wireshark dissector for Cisco TVS (Trust Verification Service), TCP 2445 inside TLS.
--
-- Part of tvs-lab (MIT). Install and usage: dissector/README.md. The format is described in
-- the project's protocol notes (section 1): a 10-byte header (discriminator 0x57, version 1,
-- type, reserved, request id u32, body length u16), then elements tag:u8 length:u16 value.
-- Tags 4/5 (issuer/serial) are inferred, 5/6 also possible: a printable NUL-terminated value
-- is shown as the issuer, raw bytes as the serial.
--
-- Wireshark does not know that 2445 carries TLS: this script registers TCP port 2445 (and
-- every port in the "tvs.ports" preference) as TLS, and the same ports in the TLS port table
-- as TVS. Give the TLS secrets with -o tls.keylog_file:FILE (tvs serve --keylog FILE).

local tvs = Proto("tvs", "Cisco Trust Verification Service")

local HEADER = 10

local msg_types = {
    [1] = "VERIFY_REQUEST",
    [2] = "VERIFY_RESPONSE",
    [3] = "QUERY_CERT_REQ",
    [4] = "QUERY_CERT_RES",
}
local tag_names = {
    [1] = "Device name",
    [2] = "Certificate",
    [3] = "Subject name",
    [4] = "Issuer name",
    [5] = "Serial number",
    [6] = "Serial number (alt)",
    [7] = "Status",
    [8] = "Roles",
    [9] = "TTL",
}
local role_names = {
    [0] = "SAST",
    [1] = "CCM",
    [2] = "CCM+TFTP",
    [3] = "TFTP",
    [4] = "CAPF",
    [5] = "SRST",
    [6] = "FIREWALL",
    [7] = "APP-SERVER",
    [20] = "CA",
    [21] = "TVS",
    [26] = "VPN",
}
local status_names = { [0] = "valid", [1] = "invalid" }

local f = {
    discriminator = ProtoField.uint8("tvs.discriminator", "Protocol discriminator", base.HEX),
    version = ProtoField.uint8("tvs.version", "Version", base.DEC),
    type = ProtoField.uint8("tvs.type", "Message type", base.DEC, msg_types),
    reserved = ProtoField.uint8("tvs.reserved", "Reserved", base.HEX),
    request_id = ProtoField.uint32("tvs.request_id", "Request id", base.DEC),
    length = ProtoField.uint16("tvs.length", "Body length", base.DEC),
    element = ProtoField.none("tvs.element", "Element"),
    tag = ProtoField.uint8("tvs.element.tag", "Tag", base.DEC, tag_names),
    elength = ProtoField.uint16("tvs.element.length", "Length", base.DEC),
    value = ProtoField.bytes("tvs.element.value", "Value"),
    device_flag = ProtoField.uint8("tvs.device_flag", "Device name flag", base.HEX),
    device = ProtoField.string("tvs.device", "Device name"),
    certificate = ProtoField.bytes("tvs.certificate", "Certificate (DER)"),
    subject = ProtoField.string("tvs.subject", "Subject name"),
    issuer = ProtoField.string("tvs.issuer", "Issuer name"),
    serial = ProtoField.bytes("tvs.serial", "Serial number"),
    status = ProtoField.uint8("tvs.status", "Status", base.DEC, status_names),
    role = ProtoField.uint8("tvs.role", "Role", base.DEC, role_names),
    ttl = ProtoField.uint32("tvs.ttl", "TTL (seconds)", base.DEC),
}
tvs.fields = {
    f.discriminator, f.version, f.type, f.reserved, f.request_id, f.length, f.element, f.tag,
    f.elength, f.value, f.device_flag, f.device, f.certificate, f.subject, f.issuer, f.serial,
    f.status, f.role, f.ttl,
}

local e_bad_discriminator = ProtoExpert.new(
    "tvs.bad_discriminator", "Not a TVS message (discriminator is not 0x57)",
    expert.group.MALFORMED, expert.severity.ERROR)
local e_overrun = ProtoExpert.new(
    "tvs.element_overrun", "Element runs past the end of the message",
    expert.group.MALFORMED, expert.severity.ERROR)
local e_unknown_tag = ProtoExpert.new(
    "tvs.unknown_tag", "Unknown element tag", expert.group.UNDECODED, expert.severity.NOTE)
tvs.experts = { e_bad_discriminator, e_overrun, e_unknown_tag }

tvs.prefs.ports = Pref.range("TLS ports", "2445", "TCP ports carrying TVS over TLS", 65535)

local x509 = Dissector.get("application/pkix-cert")

-- a printable string with one trailing NUL (how names travel)
local function cstring(range)
    local n = range:len()
    if n < 1 or range(n - 1, 1):uint() ~= 0 then
        return nil
    end
    local s = range:raw(0, n - 1)
    if s:find("[^\32-\126]") then
        return nil
    end
    return s
end

local function add_element(tree, tvb, pinfo, offset, stop, info)
    local tag = tvb(offset, 1):uint()
    local len = tvb(offset + 1, 2):uint()
    local avail = stop - offset - 3
    local label = tag_names[tag] or ("Unknown tag " .. tag)
    local sub = tree:add(f.element, tvb(offset, math.min(3 + len, stop - offset)))
    sub:set_text(label .. " (" .. len .. " bytes)")
    sub:add(f.tag, tvb(offset, 1))
    sub:add(f.elength, tvb(offset + 1, 2))
    if len > avail then
        sub:add_proto_expert_info(e_overrun)
        return stop
    end
    if len == 0 then
        return offset + 3
    end
    local v = tvb(offset + 3, len)
    if tag == 1 then
        sub:add(f.device_flag, v(0, 1))
        if len > 1 then
            local name = v(1, len - 1)
            sub:add(f.device, name)
            info.device = name:string()
        end
    elseif tag == 2 then
        sub:add(f.certificate, v)
        if x509 ~= nil then
            x509:call(v:tvb(), pinfo, sub)
        end
    elseif tag == 3 then
        local s = cstring(v) or v:string()
        sub:add(f.subject, v, s)
        info.subject = s
    elseif tag == 4 or tag == 5 or tag == 6 then
        local s = cstring(v)
        if s ~= nil then
            sub:add(f.issuer, v, s)
            sub:set_text("Issuer name (" .. len .. " bytes)")
        else
            sub:add(f.serial, v)
            sub:set_text("Serial number (" .. len .. " bytes)")
        end
    elseif tag == 7 then
        sub:add(f.status, v(0, 1))
        info.status = status_names[v(0, 1):uint()] or tostring(v(0, 1):uint())
    elseif tag == 8 then
        local names = {}
        for i = 0, len - 1 do
            sub:add(f.role, v(i, 1))
            local code = v(i, 1):uint()
            names[#names + 1] = role_names[code] or ("role-" .. code)
        end
        info.roles = table.concat(names, ",")
    elseif tag == 9 and len == 4 then
        sub:add(f.ttl, v)
        info.ttl = v:uint()
    else
        sub:add(f.value, v)
        if tag_names[tag] == nil then
            sub:add_proto_expert_info(e_unknown_tag)
        end
    end
    return offset + 3 + len
end

local function dissect_one(tvb, pinfo, tree, offset)
    local body = tvb(offset + 8, 2):uint()
    local total = HEADER + body
    local t = tree:add(tvs, tvb(offset, total))
    local mtype = tvb(offset + 2, 1):uint()
    local name = msg_types[mtype] or ("unknown type " .. mtype)
    t:add(f.discriminator, tvb(offset, 1))
    t:add(f.version, tvb(offset + 1, 1))
    t:add(f.type, tvb(offset + 2, 1))
    t:add(f.reserved, tvb(offset + 3, 1))
    t:add(f.request_id, tvb(offset + 4, 4))
    t:add(f.length, tvb(offset + 8, 2))
    local info = {}
    local pos, stop = offset + HEADER, offset + total
    while pos + 3 <= stop do
        pos = add_element(t, tvb, pinfo, pos, stop, info)
    end
    local text = name .. " id=" .. tvb(offset + 4, 4):uint()
    if info.subject then text = text .. " subject=" .. info.subject end
    if info.status then text = text .. " " .. info.status end
    if info.roles then text = text .. " roles=" .. info.roles end
    if info.ttl then text = text .. " ttl=" .. info.ttl end
    t:append_text(", " .. text)
    return text, total
end

-- Returns the bytes taken: all of them, also when asking TCP/TLS for more (desegment_len) and
-- when the data is not TVS (marked malformed: the port says it is TVS).
function tvs.dissector(tvb, pinfo, tree)
    local offset, texts = 0, {}
    pinfo.cols.protocol = "TVS"
    while offset < tvb:len() do
        local left = tvb:len() - offset
        if left < HEADER then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        if tvb(offset, 1):uint() ~= 0x57 then
            local t = tree:add(tvs, tvb(offset))
            t:add_proto_expert_info(e_bad_discriminator)
            texts[#texts + 1] = "not a TVS message"
            break
        end
        local total = HEADER + tvb(offset + 8, 2):uint()
        if left < total then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = total - left
            break
        end
        local text = dissect_one(tvb, pinfo, tree, offset)
        texts[#texts + 1] = text
        offset = offset + total
    end
    if #texts > 0 then
        pinfo.cols.info = table.concat(texts, "; ")
    end
    return tvb:len()
end

local tls = Dissector.get("tls")
local registered = nil

local function register_ports()
    local tcp_table = DissectorTable.get("tcp.port")
    local tls_table = DissectorTable.get("tls.port")
    if registered ~= nil then
        tcp_table:remove(registered, tls)
        tls_table:remove(registered, tvs)
    end
    registered = tvs.prefs.ports
    tcp_table:add(registered, tls)
    tls_table:add(registered, tvs)
end

function tvs.prefs_changed()
    register_ports()
end

-- listed in Decode As (Wireshark: Analyze > Decode As; tshark: -d tls.port==PORT,tvs)
DissectorTable.get("tls.port"):add_for_decode_as(tvs)
DissectorTable.get("tcp.port"):add_for_decode_as(tvs)

register_ports()

-- ============================================================================================
-- CAPF (Certificate Authority Proxy Function), TCP 3804 inside TLS (protocol notes section 8).
-- An 8-byte header (discriminator 0x55, command, session id u32, body length u16), then
-- elements tag:u8 length:u16 value. The certificate element nests its own header
-- (0x01, u16 length, 0x00, certificate type, DER); SUDI data and SHA-2 signed data carry
-- sub-elements. The server writes header and body apart: messages are reassembled.

local capf = Proto("capf", "Cisco Certificate Authority Proxy Function")

local CAPF_HEADER = 8

local capf_commands = {
    [1] = "AUTH_REQUEST", [2] = "AUTH_RESPONSE", [3] = "KEY_GENERATE_REQUEST",
    [4] = "KEY_GENERATE_RESPONSE", [5] = "ENCRYPT_RESPONSE", [6] = "ENCRYPT_REQUEST",
    [7] = "DECRYPT_REQUEST", [8] = "DECRYPT_RESPONSE", [9] = "STORE_CERTIFICATE_REQUEST",
    [10] = "STORE_CERTIFICATE_RESPONSE", [11] = "FETCH_CERTIFICATE_REQUEST",
    [12] = "FETCH_CERTIFICATE_RESPONSE", [13] = "DELETE_CERTIFICATE_REQUEST",
    [14] = "DELETE_CERTIFICATE_RESPONSE", [15] = "END_SESSION", [16] = "RETRY_LATER",
    [17] = "REQUEST_IN_PROGRESS", [18] = "STATUS_REQUEST", [19] = "STATUS_RESPONSE",
    [20] = "ABORT_REQUEST", [21] = "ABORT_RESPONSE", [22] = "SIGN_CERTIFICATE_REQUEST",
    [23] = "SIGN_CERTIFICATE_RESPONSE",
}
local capf_tags = {
    [1] = "Reason", [2] = "Reason info", [3] = "Certificate type", [4] = "Certificate",
    [6] = "Signed data", [7] = "Version", [8] = "Authentication type", [9] = "Public key",
    [10] = "Key size", [11] = "Password", [13] = "Device name", [16] = "SUDI data",
    [17] = "Key type", [18] = "Curve", [20] = "SHA-2 signed data",
}
local capf_reasons = {
    [0] = "no action", [1] = "success", [7] = "failure", [9] = "unknown device",
}
local capf_cert_types = { [1] = "LSC", [2] = "MIC" }
local capf_auth_types = {
    [0] = "none", [1] = "auth string", [2] = "null string", [3] = "LSC", [4] = "MIC",
}
local capf_key_types = { [0] = "RSA", [1] = "EC" }
local capf_curves = { [0] = "P-256", [1] = "P-384", [2] = "P-521" }
local capf_hashes = { [1] = "SHA-1", [2] = "SHA-256", [3] = "SHA-512" }
local capf_sudi_parts = { [0] = "MIC (DER)", [1] = "SHA-1 signature", [3] = "SHA-512 signature" }

local cf = {
    discriminator = ProtoField.uint8("capf.discriminator", "Protocol discriminator", base.HEX),
    command = ProtoField.uint8("capf.command", "Command", base.DEC, capf_commands),
    session_id = ProtoField.uint32("capf.session_id", "Session id", base.DEC),
    length = ProtoField.uint16("capf.length", "Body length", base.DEC),
    element = ProtoField.none("capf.element", "Element"),
    tag = ProtoField.uint8("capf.element.tag", "Tag", base.DEC, capf_tags),
    elength = ProtoField.uint16("capf.element.length", "Length", base.DEC),
    value = ProtoField.bytes("capf.element.value", "Value"),
    reason = ProtoField.uint8("capf.reason", "Reason", base.DEC, capf_reasons),
    reason_info = ProtoField.string("capf.reason_info", "Reason info"),
    cert_type = ProtoField.uint8("capf.cert_type", "Certificate type", base.DEC, capf_cert_types),
    cert_header = ProtoField.uint8("capf.cert.marker", "Certificate marker", base.HEX),
    cert_length = ProtoField.uint16("capf.cert.length", "Certificate length (+2)", base.DEC),
    certificate = ProtoField.bytes("capf.certificate", "Certificate (DER)"),
    signed_data = ProtoField.bytes("capf.signed_data", "Signed data"),
    version = ProtoField.uint8("capf.version", "Version", base.DEC),
    auth_type = ProtoField.uint8("capf.auth_type", "Authentication type", base.DEC,
        capf_auth_types),
    public_key = ProtoField.bytes("capf.public_key", "Public key (SubjectPublicKeyInfo)"),
    key_size = ProtoField.uint16("capf.key_size", "Key size (bits)", base.DEC),
    password = ProtoField.string("capf.password", "Password"),
    device = ProtoField.string("capf.device", "Device name"),
    sudi_part = ProtoField.uint8("capf.sudi.part", "SUDI part", base.DEC, capf_sudi_parts),
    sudi_value = ProtoField.bytes("capf.sudi.value", "SUDI value"),
    key_type = ProtoField.uint8("capf.key_type", "Key type", base.DEC, capf_key_types),
    curve = ProtoField.uint8("capf.curve", "Curve", base.DEC, capf_curves),
    sha2_hash = ProtoField.uint8("capf.sha2.hash", "Hash", base.DEC, capf_hashes),
    sha2_signature = ProtoField.bytes("capf.sha2.signature", "Signature"),
}
capf.fields = {
    cf.discriminator, cf.command, cf.session_id, cf.length, cf.element, cf.tag, cf.elength,
    cf.value, cf.reason, cf.reason_info, cf.cert_type, cf.cert_header, cf.cert_length,
    cf.certificate, cf.signed_data, cf.version, cf.auth_type, cf.public_key, cf.key_size,
    cf.password, cf.device, cf.sudi_part, cf.sudi_value, cf.key_type, cf.curve, cf.sha2_hash,
    cf.sha2_signature,
}

local ce_bad_discriminator = ProtoExpert.new(
    "capf.bad_discriminator", "Not a CAPF message (discriminator is not 0x55)",
    expert.group.MALFORMED, expert.severity.ERROR)
local ce_overrun = ProtoExpert.new(
    "capf.element_overrun", "Element runs past the end of the message",
    expert.group.MALFORMED, expert.severity.ERROR)
local ce_bad_nested = ProtoExpert.new(
    "capf.bad_nested", "Nested value does not match its lengths",
    expert.group.MALFORMED, expert.severity.WARN)
local ce_unknown_tag = ProtoExpert.new(
    "capf.unknown_tag", "Unknown element tag", expert.group.UNDECODED, expert.severity.NOTE)
capf.experts = { ce_bad_discriminator, ce_overrun, ce_bad_nested, ce_unknown_tag }

capf.prefs.ports = Pref.range("TLS ports", "3804", "TCP ports carrying CAPF over TLS", 65535)

-- ASCII with a trailing NUL, as device names and passwords travel
local function capf_text(range)
    local n = range:len()
    if n >= 1 and range(n - 1, 1):uint() == 0 then
        return range:raw(0, n - 1)
    end
    return range:raw()
end

local function capf_certificate(sub, v, pinfo, info)
    -- 0x01, u16 (derlen + 2), 0x00, type, DER
    local len = v:len()
    if len < 5 or v(0, 1):uint() ~= 1 or v(1, 2):uint() + 3 ~= len then
        sub:add(cf.value, v)
        sub:add_proto_expert_info(ce_bad_nested)
        return
    end
    sub:add(cf.cert_header, v(0, 1))
    sub:add(cf.cert_length, v(1, 2))
    sub:add(cf.cert_type, v(4, 1))
    local der = v(5, len - 5)
    sub:add(cf.certificate, der)
    info.certificate = capf_cert_types[v(4, 1):uint()] or "certificate"
    if x509 ~= nil and der:len() > 0 then
        x509:call(der:tvb(), pinfo, sub)
    end
end

local function capf_sudi(sub, v, pinfo)
    local pos, len = 0, v:len()
    while pos + 3 <= len do
        local part, plen = v(pos, 1):uint(), v(pos + 1, 2):uint()
        if pos + 3 + plen > len then
            sub:add_proto_expert_info(ce_bad_nested)
            return
        end
        local p = sub:add(cf.sudi_part, v(pos, 1))
        if plen > 0 then
            p:add(cf.sudi_value, v(pos + 3, plen))
            if part == 0 and x509 ~= nil then
                x509:call(v(pos + 3, plen):tvb(), pinfo, p)
            end
        end
        pos = pos + 3 + plen
    end
    if pos ~= len then
        sub:add_proto_expert_info(ce_bad_nested)
    end
end

local function capf_element(tree, tvb, pinfo, offset, stop, info)
    local tag = tvb(offset, 1):uint()
    local len = tvb(offset + 1, 2):uint()
    local avail = stop - offset - 3
    local label = capf_tags[tag] or ("Unknown tag " .. tag)
    local sub = tree:add(cf.element, tvb(offset, math.min(3 + len, stop - offset)))
    sub:set_text(label .. " (" .. len .. " bytes)")
    sub:add(cf.tag, tvb(offset, 1))
    sub:add(cf.elength, tvb(offset + 1, 2))
    if len > avail then
        sub:add_proto_expert_info(ce_overrun)
        return stop
    end
    if len == 0 then
        return offset + 3
    end
    local v = tvb(offset + 3, len)
    if tag == 1 and len == 1 then
        sub:add(cf.reason, v)
        info.reason = capf_reasons[v:uint()] or tostring(v:uint())
    elseif tag == 2 then
        sub:add(cf.reason_info, v, capf_text(v))
    elseif tag == 3 and len == 1 then
        sub:add(cf.cert_type, v)
    elseif tag == 4 then
        capf_certificate(sub, v, pinfo, info)
    elseif tag == 6 then
        sub:add(cf.signed_data, v)
    elseif tag == 7 and len == 1 then
        sub:add(cf.version, v)
        info.version = v:uint()
    elseif tag == 8 and len == 1 then
        sub:add(cf.auth_type, v)
        info.auth = capf_auth_types[v:uint()] or tostring(v:uint())
    elseif tag == 9 then
        sub:add(cf.public_key, v)
        info.public_key = len
    elseif tag == 10 and len == 2 then
        sub:add(cf.key_size, v)
        info.key = "RSA-" .. v:uint()
    elseif tag == 11 then
        sub:add(cf.password, v, capf_text(v))
    elseif tag == 13 then
        local name = capf_text(v)
        sub:add(cf.device, v, name)
        info.device = name
    elseif tag == 16 then
        capf_sudi(sub, v, pinfo)
    elseif tag == 17 and len == 1 then
        sub:add(cf.key_type, v)
        info.key_type = capf_key_types[v:uint()]
    elseif tag == 18 and len == 1 then
        sub:add(cf.curve, v)
        info.curve = capf_curves[v:uint()] or tostring(v:uint())
    elseif tag == 20 and len >= 3 then
        sub:add(cf.sha2_hash, v(0, 1))
        local slen = v(1, 2):uint()
        if slen + 3 ~= len then
            sub:add_proto_expert_info(ce_bad_nested)
        end
        sub:add(cf.sha2_signature, v(3, len - 3))
    else
        sub:add(cf.value, v)
        if capf_tags[tag] == nil then
            sub:add_proto_expert_info(ce_unknown_tag)
        end
    end
    return offset + 3 + len
end

local function capf_one(tvb, pinfo, tree, offset)
    local total = CAPF_HEADER + tvb(offset + 6, 2):uint()
    local t = tree:add(capf, tvb(offset, total))
    local cmd = tvb(offset + 1, 1):uint()
    local name = capf_commands[cmd] or ("unknown command " .. cmd)
    t:add(cf.discriminator, tvb(offset, 1))
    t:add(cf.command, tvb(offset + 1, 1))
    t:add(cf.session_id, tvb(offset + 2, 4))
    t:add(cf.length, tvb(offset + 6, 2))
    local info = {}
    local pos, stop = offset + CAPF_HEADER, offset + total
    while pos + 3 <= stop do
        pos = capf_element(t, tvb, pinfo, pos, stop, info)
    end
    local text = name .. " sid=" .. tvb(offset + 2, 4):uint()
    if info.device then text = text .. " device=" .. info.device end
    if info.version then text = text .. " version=" .. info.version end
    if info.auth then text = text .. " auth=" .. info.auth end
    if info.key then text = text .. " key=" .. info.key end
    if info.key_type == "EC" then text = text .. " key=EC-" .. (info.curve or "?") end
    if info.public_key then text = text .. " public-key=" .. info.public_key .. "B" end
    if info.certificate then text = text .. " cert=" .. info.certificate end
    if info.reason then text = text .. " reason=" .. info.reason end
    t:append_text(", " .. text)
    return text, total
end

function capf.dissector(tvb, pinfo, tree)
    local offset, texts = 0, {}
    pinfo.cols.protocol = "CAPF"
    while offset < tvb:len() do
        local left = tvb:len() - offset
        if left < CAPF_HEADER then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        if tvb(offset, 1):uint() ~= 0x55 then
            local t = tree:add(capf, tvb(offset))
            t:add_proto_expert_info(ce_bad_discriminator)
            texts[#texts + 1] = "not a CAPF message"
            break
        end
        local total = CAPF_HEADER + tvb(offset + 6, 2):uint()
        if left < total then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = total - left
            break
        end
        local text = capf_one(tvb, pinfo, tree, offset)
        texts[#texts + 1] = text
        offset = offset + total
    end
    if #texts > 0 then
        pinfo.cols.info = table.concat(texts, "; ")
    end
    return tvb:len()
end

local capf_registered = nil

local function capf_register_ports()
    local tcp_table = DissectorTable.get("tcp.port")
    local tls_table = DissectorTable.get("tls.port")
    if capf_registered ~= nil then
        tcp_table:remove(capf_registered, tls)
        tls_table:remove(capf_registered, capf)
    end
    capf_registered = capf.prefs.ports
    tcp_table:add(capf_registered, tls)
    tls_table:add(capf_registered, capf)
end

function capf.prefs_changed()
    capf_register_ports()
end

DissectorTable.get("tls.port"):add_for_decode_as(capf)
DissectorTable.get("tcp.port"):add_for_decode_as(capf)

capf_register_ports()
