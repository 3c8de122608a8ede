"""Reading H.264 bitstreams: avcC parameter sets and their ids, SPS timing info, and the x264 option
string of its SEI turned back into x264 parameters that reproduce the same headers."""

from __future__ import annotations


def h264_sps_timing(sps: bytes) -> tuple[int, int] | None:
    """(num_units_in_tick, time_scale) from an SPS NAL unit's VUI, or None when absent or unparsable."""
    r = _BitReader(_unescape(sps)[1:])
    try:
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma = r.ue()
            if chroma == 3:
                r.bits(1)
            r.ue(), r.ue(), r.bits(1)  # bit depths, qpprime_y_zero_transform_bypass
            if r.bits(1):  # seq_scaling_matrix_present
                for i in range(8 if chroma != 3 else 12):
                    if r.bits(1):
                        last = nxt = 8
                        for _ in range(16 if i < 6 else 64):
                            if nxt:
                                nxt = (last + r.se() + 256) % 256
                            last = nxt or last
        r.ue()  # log2_max_frame_num
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bits(1), r.se(), r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue(), r.bits(1), r.ue(), r.ue()  # refs, gaps, width, height
        if not r.bits(1):  # frame_mbs_only
            r.bits(1)
        r.bits(1)  # direct_8x8_inference
        if r.bits(1):  # frame_cropping
            r.ue(), r.ue(), r.ue(), r.ue()
        if not r.bits(1):  # vui_parameters_present
            return None
        if r.bits(1) and r.bits(8) == 255:  # aspect ratio, extended SAR
            r.bits(32)
        if r.bits(1):  # overscan
            r.bits(1)
        if r.bits(1):  # video signal type
            r.bits(4)
            if r.bits(1):
                r.bits(24)
        if r.bits(1):  # chroma location
            r.ue(), r.ue()
        if not r.bits(1):  # timing_info_present
            return None
        return r.bits(32), r.bits(32)
    except IndexError:
        return None


def avcc_parameter_sets(extradata: bytes) -> list[bytes]:
    """The SPS and PPS NAL units of an avcC record, in order (empty when it is not avcC). Two streams
    decode with each other's parameters exactly when these are equal; the rest of avcC may differ."""
    nals: list[bytes] = []
    if len(extradata) < 7 or extradata[0] != 1:
        return nals
    pos = 5
    try:
        for mask in (0x1F, 0xFF):  # SPS count (low 5 bits), then PPS count
            count = extradata[pos] & mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos : pos + 2], "big")
                nals.append(bytes(extradata[pos + 2 : pos + 2 + size]))
                pos += 2 + size
    except IndexError:
        return []
    return nals


def same_parameter_sets(a: bytes, b: bytes) -> bool:
    """Whether two codec extradata blocks carry the same parameter sets (avcC), or are identical."""
    sets_a, sets_b = avcc_parameter_sets(a), avcc_parameter_sets(b)
    return sets_a == sets_b if sets_a or sets_b else a == b


def h264_parameter_set_ids(extradata: bytes) -> set[int]:
    """SPS and PPS ids present in an avcC record (empty set when it is not avcC)."""
    ids: set[int] = set()
    for nal in avcc_parameter_sets(extradata):
        payload = _unescape(nal)
        try:
            # SPS: header, profile, constraints, level, then the id; PPS: header, then the id.
            ids.add(_BitReader(payload[4:] if payload[0] & 0x1F == 7 else payload[1:]).ue())
        except IndexError:
            continue
    return ids


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _BitReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("bad exp-Golomb code")
        value = 0
        for _ in range(zeros):
            value = (value << 1) | self.bit()
        return (1 << zeros) - 1 + value


# x264 SEI option name -> x264_param_parse name, for the settings that shape headers, speed and quality.
_SEI_TO_PARAM = {
    "cabac": "cabac", "ref": "ref", "me": "me", "subme": "subme", "psy": "psy", "mixed_ref": "mixed-refs",
    "me_range": "merange", "chroma_me": "chroma-me", "trellis": "trellis", "8x8dct": "8x8dct",
    "fast_pskip": "fast-pskip", "nr": "nr", "decimate": "dct-decimate", "constrained_intra": "constrained-intra",
    "bframes": "bframes", "b_adapt": "b-adapt", "b_bias": "b-bias", "weightb": "weightb", "open_gop": "open-gop",
    "weightp": "weightp", "keyint_min": "min-keyint", "scenecut": "scenecut", "intra_refresh": "intra-refresh",
    "rc_lookahead": "rc-lookahead", "mbtree": "mbtree", "qcomp": "qcomp", "qpmin": "qpmin", "qpmax": "qpmax",
    "qpstep": "qpstep", "ip_ratio": "ipratio", "pb_ratio": "pbratio", "bluray_compat": "bluray-compat",
}  # fmt: skip


_PYRAMID = {"0": "none", "1": "strict", "2": "normal"}


_DIRECT = {"0": "none", "1": "spatial", "2": "temporal", "3": "auto"}


def x264_params_from_sei(options: str) -> dict[str, str] | None:
    """x264 parameters that reproduce an x264 SEI option string, or None when some setting cannot be
    reproduced (custom quant matrices, interlacing, stitched or 2-pass rate control)."""
    sei = dict(tok.split("=", 1) for tok in options.split() if "=" in tok)
    if sei.get("cqm", "0") != "0" or sei.get("interlaced", "0") != "0" or sei.get("rc") not in ("crf", "abr", "cqp"):
        return None
    params: dict[str, str] = {}
    for key, name in _SEI_TO_PARAM.items():
        if key in sei:
            params[name] = sei[key]
    dbk = sei.get("deblock", "1:0:0").split(":")
    if dbk[0] == "1" and len(dbk) == 3:
        params["deblock"] = f"{dbk[1]},{dbk[2]}"
    else:
        params["no-deblock"] = "1"
    if "b_pyramid" in sei:
        params["b-pyramid"] = _PYRAMID.get(sei["b_pyramid"], "normal")
    if "direct" in sei:
        params["direct"] = _DIRECT.get(sei["direct"], "spatial")
    if "keyint" in sei:
        params["keyint"] = sei["keyint"]
    if "deadzone" in sei and "," in sei["deadzone"]:
        inter, intra = sei["deadzone"].split(",", 1)
        params["deadzone-inter"], params["deadzone-intra"] = inter, intra
    if "analyse" in sei:
        params["partitions"] = _partitions(sei["analyse"])
    psy_rd, psy_trellis = 0.0, 0.0
    if sei.get("psy") == "1" and "psy_rd" in sei:
        psy_rd, psy_trellis = (float(x) for x in sei["psy_rd"].split(":"))
        params["psy-rd"] = f"{psy_rd:.2f},{psy_trellis:.2f}"
    if "chroma_qp_offset" in sei:
        # x264 lowers the requested offset to compensate psy RD and psy trellis; undo that to get the request.
        offset = int(sei["chroma_qp_offset"])
        if sei.get("psy") == "1":
            if psy_rd > 0 and int(sei.get("subme", "7")) >= 6:
                offset += 1 if psy_rd < 0.25 else 2
            if psy_trellis > 0 and sei.get("trellis", "0") != "0":
                offset += 1 if psy_trellis < 0.25 else 2
        params["chroma-qp-offset"] = str(offset)
    if "aq" in sei:
        mode, _, strength = sei["aq"].partition(":")
        params["aq-mode"] = mode
        if strength:
            params["aq-strength"] = strength
    rc = sei["rc"]
    if rc == "crf":
        params["crf"] = sei.get("crf", "23")
    elif rc == "cqp":
        params["qp"] = sei.get("qp", "23")
    else:
        params["bitrate"] = sei.get("bitrate", "2000")
    for key, name in (("vbv_maxrate", "vbv-maxrate"), ("vbv_bufsize", "vbv-bufsize")):
        if key in sei:
            params[name] = sei[key]
    return params


def _partitions(analyse: str) -> str:
    try:
        _intra, inter = (int(x, 16) for x in analyse.split(":"))
    except ValueError:
        return "p8x8,b8x8,i8x8,i4x4"
    names = []
    for bit, name in ((0x0001, "i4x4"), (0x0002, "i8x8"), (0x0010, "p8x8"), (0x0020, "p4x4"), (0x0100, "b8x8")):
        if inter & bit:
            names.append(name)
    return ",".join(names) or "none"
