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
    [7] = "APP-SERVER",
    [21] = "TVS",
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
