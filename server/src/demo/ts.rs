//! MPEG-TS packet surgery for the demo publisher: shift every clock (PCR, OPCR, PTS, DTS) by a
//! fixed offset and renumber continuity counters so that a looped clip reads as one unbroken
//! transport stream.
//!
//! Hand-rolled on purpose: the Rust TS crates (`mpeg2ts`, `mpeg2ts-reader`, ...) demux into
//! elementary streams or re-mux from scratch; none rewrites clocks in place while leaving every
//! other byte untouched, which is what keeps the looped output byte-identical to what ffmpeg
//! produced apart from the clocks. The format surface needed here is small (ISO/IEC 13818-1
//! 2.4.3.2 packet header, 2.4.3.4 adaptation field, 2.4.3.6 PES header, 2.4.4 PAT/PMT) and every
//! branch is covered by the unit tests below.

use std::fmt;

/// Size of one transport stream packet.
pub const PACKET_LEN: usize = 188;
/// PTS, DTS and PCR base are 33-bit counters of a 90 kHz clock and wrap at 2^33.
pub const TS_WRAP: u64 = 1 << 33;
/// The 90 kHz PES clock.
pub const CLOCK_HZ: u64 = 90_000;

const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;

/// H.264 (ISO/IEC 14496-10) elementary stream type in a PMT.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// AAC with ADTS framing (ISO/IEC 13818-7) elementary stream type in a PMT.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;

/// Why a byte string is not a transport stream this module can rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsError {
    /// The length is not a whole number of 188-byte packets.
    Length(usize),
    /// Packet `n` does not start with 0x47.
    Sync(usize),
    /// Packet `n` has an adaptation field longer than the packet.
    AdaptationField(usize),
    /// Packet `n` starts a PES packet whose header does not fit in the packet.
    PesHeader(usize),
    /// The PAT or PMT is missing or malformed.
    Psi(&'static str),
}

impl fmt::Display for TsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsError::Length(n) => write!(f, "{n} bytes is not a multiple of {PACKET_LEN}"),
            TsError::Sync(i) => write!(f, "packet {i}: missing 0x47 sync byte"),
            TsError::AdaptationField(i) => {
                write!(f, "packet {i}: adaptation field runs past the packet")
            }
            TsError::PesHeader(i) => write!(f, "packet {i}: PES header runs past the packet"),
            TsError::Psi(what) => write!(f, "program tables: {what}"),
        }
    }
}

impl std::error::Error for TsError {}

impl From<TsError> for std::io::Error {
    fn from(e: TsError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// The header fields of one packet, plus where its payload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub pid: u16,
    /// payload_unit_start_indicator: a PES packet or a PSI section starts here.
    pub unit_start: bool,
    pub has_payload: bool,
    pub continuity_counter: u8,
    /// random_access_indicator from the adaptation field.
    pub random_access: bool,
    /// Byte offset of the payload inside the packet (188 when there is none).
    pub payload_offset: usize,
}

/// Parses the fixed header and the adaptation field of packet number `index` (for errors).
pub fn parse_header(pkt: &[u8], index: usize) -> Result<Header, TsError> {
    if pkt.len() != PACKET_LEN {
        return Err(TsError::Length(pkt.len()));
    }
    if pkt[0] != SYNC_BYTE {
        return Err(TsError::Sync(index));
    }
    let pid = (u16::from(pkt[1] & 0x1f) << 8) | u16::from(pkt[2]);
    let afc = (pkt[3] >> 4) & 0x3;
    let has_adaptation = afc & 0x2 != 0;
    let has_payload = afc & 0x1 != 0;
    let mut payload_offset = 4;
    let mut random_access = false;
    if has_adaptation {
        let len = usize::from(pkt[4]);
        // With a payload the field may use at most 183 bytes, without one exactly 183.
        if 5 + len > PACKET_LEN {
            return Err(TsError::AdaptationField(index));
        }
        if len > 0 {
            random_access = pkt[5] & 0x40 != 0;
        }
        payload_offset = 5 + len;
    }
    Ok(Header {
        pid,
        unit_start: pkt[1] & 0x40 != 0,
        has_payload: has_payload && payload_offset < PACKET_LEN,
        continuity_counter: pkt[3] & 0x0f,
        random_access,
        payload_offset: if has_payload {
            payload_offset
        } else {
            PACKET_LEN
        },
    })
}

/// Splits a buffer into packets after checking its length.
pub fn packets(data: &[u8]) -> Result<std::slice::ChunksExact<'_, u8>, TsError> {
    if !data.len().is_multiple_of(PACKET_LEN) {
        return Err(TsError::Length(data.len()));
    }
    Ok(data.chunks_exact(PACKET_LEN))
}

/// Reads a 5-byte PES timestamp (PTS or DTS) ignoring the 4-bit prefix and marker bits.
pub fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1
}

/// Writes a 33-bit timestamp into a 5-byte PES field, keeping its 4-bit prefix, and setting
/// the marker bits.
pub fn write_timestamp(b: &mut [u8], ts: u64) {
    let ts = ts % TS_WRAP;
    b[0] = (b[0] & 0xf0) | (((ts >> 30) as u8 & 0x07) << 1) | 1;
    b[1] = (ts >> 22) as u8;
    b[2] = (((ts >> 15) as u8 & 0x7f) << 1) | 1;
    b[3] = (ts >> 7) as u8;
    b[4] = (((ts as u8) & 0x7f) << 1) | 1;
}

/// Reads a 6-byte PCR (or OPCR) as (33-bit base at 90 kHz, 9-bit extension at 27 MHz).
pub fn read_pcr(b: &[u8]) -> (u64, u16) {
    let base = u64::from(b[0]) << 25
        | u64::from(b[1]) << 17
        | u64::from(b[2]) << 9
        | u64::from(b[3]) << 1
        | u64::from(b[4]) >> 7;
    let ext = (u16::from(b[4] & 0x01) << 8) | u16::from(b[5]);
    (base, ext)
}

/// Writes a PCR (or OPCR) with the 6 reserved bits set to 1 as the standard requires.
pub fn write_pcr(b: &mut [u8], base: u64, ext: u16) {
    let base = base % TS_WRAP;
    b[0] = (base >> 25) as u8;
    b[1] = (base >> 17) as u8;
    b[2] = (base >> 9) as u8;
    b[3] = (base >> 1) as u8;
    b[4] = (((base & 1) as u8) << 7) | 0x7e | ((ext >> 8) as u8 & 0x01);
    b[5] = ext as u8;
}

/// The location of the PES header of a packet that starts a PES packet carrying timestamps:
/// `(offset of PTS, offset of DTS if any)`. `None` if the packet starts no PES packet, or the
/// stream id carries no optional header (padding, private_stream_2, ECM, ...).
fn pes_timestamp_offsets(
    pkt: &[u8],
    h: &Header,
    index: usize,
) -> Result<Option<(usize, Option<usize>)>, TsError> {
    if !h.unit_start || !h.has_payload || h.pid == PAT_PID {
        return Ok(None);
    }
    let p = &pkt[h.payload_offset..];
    if p.len() < 3 || p[..3] != [0, 0, 1] {
        // A PSI section (PMT, SDT) starts here, not a PES packet.
        return Ok(None);
    }
    if p.len() < 9 {
        return Err(TsError::PesHeader(index));
    }
    let stream_id = p[3];
    // Stream ids without the optional PES header (ISO/IEC 13818-1 table 2-21 / 2.4.3.7).
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) {
        return Ok(None);
    }
    let flags = p[7] >> 6;
    let header_len = usize::from(p[8]);
    if 9 + header_len > p.len() {
        return Err(TsError::PesHeader(index));
    }
    let base = h.payload_offset + 9;
    match flags {
        0b10 if header_len >= 5 => Ok(Some((base, None))),
        0b11 if header_len >= 10 => Ok(Some((base, Some(base + 5)))),
        0b00 => Ok(None),
        _ => Err(TsError::PesHeader(index)),
    }
}

/// The PTS carried by `pkt` if it starts a PES packet with one.
pub fn pes_pts(pkt: &[u8], index: usize) -> Result<Option<u64>, TsError> {
    let h = parse_header(pkt, index)?;
    Ok(pes_timestamp_offsets(pkt, &h, index)?.map(|(pts, _)| read_timestamp(&pkt[pts..pts + 5])))
}

/// Adds `offset` (90 kHz ticks) to the PCR, OPCR, PTS and DTS found in one packet, modulo 2^33.
/// ESCR and DSM trick mode fields are not shifted: ffmpeg, which made the demo clip, never
/// writes them, and players ignore them.
pub fn shift_packet(pkt: &mut [u8], offset: u64, index: usize) -> Result<(), TsError> {
    let h = parse_header(pkt, index)?;
    let afc = (pkt[3] >> 4) & 0x3;
    if afc & 0x2 != 0 && pkt[4] > 0 {
        let af_end = 5 + usize::from(pkt[4]);
        let flags = pkt[5];
        let mut at = 6;
        for present in [flags & 0x10 != 0, flags & 0x08 != 0] {
            if present {
                if at + 6 > af_end {
                    return Err(TsError::AdaptationField(index));
                }
                let (base, ext) = read_pcr(&pkt[at..at + 6]);
                write_pcr(&mut pkt[at..at + 6], base + offset % TS_WRAP, ext);
                at += 6;
            }
        }
    }
    if let Some((pts, dts)) = pes_timestamp_offsets(pkt, &h, index)? {
        for at in std::iter::once(pts).chain(dts) {
            let t = read_timestamp(&pkt[at..at + 5]);
            write_timestamp(&mut pkt[at..at + 5], t + offset % TS_WRAP);
        }
    }
    Ok(())
}

/// Continuity counters per PID for one output stream. Counters advance only on packets that
/// carry a payload (ISO/IEC 13818-1 2.4.3.3); packets with an adaptation field only repeat the
/// last value.
#[derive(Clone)]
pub struct ContinuityCounters {
    last: Box<[Option<u8>; 8192]>,
}

impl Default for ContinuityCounters {
    fn default() -> Self {
        ContinuityCounters {
            last: Box::new([None; 8192]),
        }
    }
}

impl ContinuityCounters {
    /// Renumbers the continuity counter of one packet so it follows the previous packet of
    /// the same PID in this output stream. The first packet of a PID keeps its counter.
    pub fn restamp(&mut self, pkt: &mut [u8], index: usize) -> Result<(), TsError> {
        let h = parse_header(pkt, index)?;
        let slot = &mut self.last[usize::from(h.pid)];
        // The adaptation_field_control payload bit decides, even for an empty payload.
        let cc = match (*slot, pkt[3] & 0x10 != 0) {
            (None, _) => h.continuity_counter,
            (Some(prev), true) => (prev + 1) & 0x0f,
            (Some(prev), false) => prev,
        };
        pkt[3] = (pkt[3] & 0xf0) | cc;
        *slot = Some(cc);
        Ok(())
    }
}

/// Appends `src` to `out` with every clock shifted by `offset` and continuity counters carried
/// on from `cc`. `src` is checked completely before anything is appended.
pub fn rewrite_into(
    src: &[u8],
    offset: u64,
    cc: &mut ContinuityCounters,
    out: &mut Vec<u8>,
) -> Result<(), TsError> {
    let start = out.len();
    let mut scratch = cc.clone();
    out.extend_from_slice(src);
    let result = (|| {
        for (i, pkt) in out[start..].chunks_mut(PACKET_LEN).enumerate() {
            if pkt.len() != PACKET_LEN {
                return Err(TsError::Length(src.len()));
            }
            shift_packet(pkt, offset, i)?;
            scratch.restamp(pkt, i)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            *cc = scratch;
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// One elementary stream listed in a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub pid: u16,
    pub stream_type: u8,
}

/// Reads the PAT and then the first program's PMT from `data` and returns its elementary
/// streams. Sections are expected to fit in one packet, which holds for any single-program
/// stream with a handful of elementary streams.
pub fn program_streams(data: &[u8]) -> Result<Vec<Stream>, TsError> {
    let mut pmt_pid = None;
    for (i, pkt) in packets(data)?.enumerate() {
        let h = parse_header(pkt, i)?;
        let is_table = h.pid == PAT_PID || Some(h.pid) == pmt_pid;
        if !h.unit_start || !h.has_payload || !is_table {
            continue;
        }
        let section = psi_section(&pkt[h.payload_offset..])?;
        match pmt_pid {
            None if h.pid == PAT_PID => {
                // table_id 0: 8 bytes of header, then 4-byte program entries, then CRC.
                if section.first() != Some(&0x00) {
                    return Err(TsError::Psi("PID 0 does not carry a PAT"));
                }
                let entries = &section[8..section.len() - 4];
                pmt_pid = entries
                    .chunks_exact(4)
                    .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
                    .map(|e| u16::from_be_bytes([e[2] & 0x1f, e[3]]));
                if pmt_pid.is_none() {
                    return Err(TsError::Psi("PAT lists no program"));
                }
            }
            Some(pid) if h.pid == pid => {
                if section.first() != Some(&0x02) {
                    return Err(TsError::Psi("PMT PID does not carry a PMT"));
                }
                let info_len = usize::from(u16::from_be_bytes([section[10], section[11]]) & 0xfff);
                let mut at = 12 + info_len;
                let end = section.len() - 4;
                let mut streams = Vec::new();
                while at + 5 <= end {
                    let stream_type = section[at];
                    let pid = u16::from_be_bytes([section[at + 1] & 0x1f, section[at + 2]]);
                    let es_info =
                        usize::from(u16::from_be_bytes([section[at + 3], section[at + 4]]) & 0xfff);
                    streams.push(Stream { pid, stream_type });
                    at += 5 + es_info;
                }
                return Ok(streams);
            }
            _ => {}
        }
    }
    Err(TsError::Psi(if pmt_pid.is_none() {
        "no PAT"
    } else {
        "no PMT"
    }))
}

/// The PSI section starting in a payload (after the pointer field), bounded by section_length.
fn psi_section(payload: &[u8]) -> Result<&[u8], TsError> {
    let pointer = usize::from(*payload.first().ok_or(TsError::Psi("empty section"))?);
    let s = payload
        .get(1 + pointer..)
        .ok_or(TsError::Psi("pointer field past the packet"))?;
    if s.len() < 3 {
        return Err(TsError::Psi("truncated section header"));
    }
    let len = usize::from(u16::from_be_bytes([s[1], s[2]]) & 0xfff);
    // 3 header bytes + section_length; the shortest meaningful section has 5 header bytes
    // after the length, and a 4-byte CRC.
    if len < 9 || 3 + len > s.len() {
        return Err(TsError::Psi("section does not fit in one packet"));
    }
    Ok(&s[..3 + len])
}

/// The payload bytes of the first PES packet of `pid` in `data` (PES header removed), up to
/// the start of the next one.
pub fn first_pes_payload(data: &[u8], pid: u16) -> Result<Vec<u8>, TsError> {
    let mut out = Vec::new();
    let mut started = false;
    for (i, pkt) in packets(data)?.enumerate() {
        let h = parse_header(pkt, i)?;
        if h.pid != pid || !h.has_payload {
            continue;
        }
        let p = &pkt[h.payload_offset..];
        if h.unit_start {
            if started {
                break;
            }
            if p.len() < 9 || p[..3] != [0, 0, 1] {
                return Err(TsError::PesHeader(i));
            }
            let body = 9 + usize::from(p[8]);
            out.extend_from_slice(p.get(body..).ok_or(TsError::PesHeader(i))?);
            started = true;
        } else if started {
            out.extend_from_slice(p);
        }
    }
    Ok(out)
}

/// NAL unit types (ISO/IEC 14496-10 table 7-1) of an Annex B byte stream, in order, with the
/// NAL unit bodies.
pub fn annexb_nal_units(es: &[u8]) -> Vec<(u8, &[u8])> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .filter_map(|(n, &s)| {
            let mut end = starts.get(n + 1).map_or(es.len(), |&next| next - 3);
            // A 4-byte start code leaves one zero byte at the end of the previous unit.
            while end > s && es[end - 1] == 0 {
                end -= 1;
            }
            es.get(s..end)
                .filter(|nal| !nal.is_empty())
                .map(|nal| (nal[0] & 0x1f, nal))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with optional adaptation field (with PCR) and a PES header with PTS/DTS.
    fn pes_packet(pid: u16, cc: u8, pcr: Option<u64>, pts: u64, dts: Option<u64>) -> Vec<u8> {
        let mut p = vec![0xff; PACKET_LEN];
        p[0] = SYNC_BYTE;
        p[1] = 0x40 | (pid >> 8) as u8;
        p[2] = pid as u8;
        let mut at = 4;
        if let Some(pcr) = pcr {
            p[3] = 0x30 | cc;
            p[4] = 7;
            p[5] = 0x50; // random access + PCR
            write_pcr(&mut p[6..12], pcr, 123);
            at = 12;
        } else {
            p[3] = 0x10 | cc;
        }
        let flags = if dts.is_some() { 0xc0 } else { 0x80 };
        let hlen = if dts.is_some() { 10 } else { 5 };
        p[at..at + 9].copy_from_slice(&[0, 0, 1, 0xe0, 0, 0, 0x80, flags, hlen]);
        p[at + 9] = if dts.is_some() { 0x30 } else { 0x20 };
        write_timestamp(&mut p[at + 9..at + 14], pts);
        if let Some(dts) = dts {
            p[at + 14] = 0x10;
            write_timestamp(&mut p[at + 14..at + 19], dts);
        }
        p
    }

    fn adaptation_only(pid: u16, cc: u8) -> Vec<u8> {
        let mut p = vec![0xff; PACKET_LEN];
        p[0] = SYNC_BYTE;
        p[1] = (pid >> 8) as u8;
        p[2] = pid as u8;
        p[3] = 0x20 | cc;
        p[4] = 183;
        p[5] = 0;
        p
    }

    fn pcr_of(p: &[u8]) -> (u64, u16) {
        read_pcr(&p[6..12])
    }

    #[test]
    fn timestamp_roundtrip_keeps_prefix_and_markers() {
        for ts in [0, 1, 126_000, (1 << 32) + 12345, TS_WRAP - 1] {
            let mut b = [0x31, 0, 0, 0, 0];
            write_timestamp(&mut b, ts);
            assert_eq!(read_timestamp(&b), ts);
            assert_eq!(b[0] & 0xf0, 0x30, "prefix kept");
            assert_eq!(b[0] & 1, 1);
            assert_eq!(b[2] & 1, 1);
            assert_eq!(b[4] & 1, 1);
        }
        let mut b = [0x20, 0, 0, 0, 0];
        write_timestamp(&mut b, TS_WRAP + 7);
        assert_eq!(read_timestamp(&b), 7, "wraps at 2^33");
    }

    #[test]
    fn pcr_roundtrip_and_reserved_bits() {
        for (base, ext) in [(0, 0), (1, 299), (TS_WRAP - 1, 256), (1 << 32, 1)] {
            let mut b = [0; 6];
            write_pcr(&mut b, base, ext);
            assert_eq!(read_pcr(&b), (base, ext));
            assert_eq!(b[4] & 0x7e, 0x7e);
        }
    }

    #[test]
    fn shift_moves_pcr_pts_dts_and_wraps() {
        let mut p = pes_packet(256, 3, Some(TS_WRAP - 10), TS_WRAP - 5, Some(TS_WRAP - 8));
        let before = p.clone();
        shift_packet(&mut p, 20, 0).unwrap();
        assert_eq!(pcr_of(&p), (10, 123), "PCR base wraps, extension kept");
        assert_eq!(pes_pts(&p, 0).unwrap(), Some(15));
        assert_eq!(read_timestamp(&p[12 + 14..12 + 19]), 12);
        // Nothing but the clocks changed.
        let changed: Vec<usize> = (0..PACKET_LEN).filter(|&i| p[i] != before[i]).collect();
        assert!(changed
            .iter()
            .all(|&i| (6..12).contains(&i) || (21..31).contains(&i)));
    }

    #[test]
    fn shift_by_a_full_wrap_is_identity() {
        let mut p = pes_packet(256, 0, Some(5), 900_000, None);
        let before = p.clone();
        shift_packet(&mut p, TS_WRAP, 0).unwrap();
        assert_eq!(p, before);
    }

    #[test]
    fn shift_leaves_psi_and_continuation_packets_alone() {
        let mut pat = vec![0xff; PACKET_LEN];
        pat[..17].copy_from_slice(&[
            0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00,
            0x01, 0xf0, 0x00,
        ]);
        let before = pat.clone();
        shift_packet(&mut pat, 12345, 0).unwrap();
        assert_eq!(pat, before);
        let mut cont = pes_packet(256, 0, None, 1000, None);
        cont[1] &= !0x40; // not a unit start: the bytes are payload, not a PES header
        let before = cont.clone();
        shift_packet(&mut cont, 12345, 0).unwrap();
        assert_eq!(cont, before);
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let good = pes_packet(256, 0, None, 1000, None);
        let mut bad_sync = good.clone();
        bad_sync[0] = 0;
        assert_eq!(shift_packet(&mut bad_sync, 1, 4), Err(TsError::Sync(4)));
        let mut bad_af = adaptation_only(256, 0);
        bad_af[4] = 184;
        assert_eq!(
            shift_packet(&mut bad_af, 1, 2),
            Err(TsError::AdaptationField(2))
        );
        let mut bad_pes = good.clone();
        bad_pes[4 + 8] = 200; // PES header length past the packet
        assert_eq!(shift_packet(&mut bad_pes, 1, 1), Err(TsError::PesHeader(1)));
        let mut short = good.clone();
        short.truncate(100);
        assert!(shift_packet(&mut short, 1, 0).is_err());
        let mut out = Vec::new();
        let mut cc = ContinuityCounters::default();
        assert_eq!(
            rewrite_into(&good[..187], 0, &mut cc, &mut out),
            Err(TsError::Length(187))
        );
        assert!(out.is_empty());
        // An error in a later packet leaves neither output nor counters half-updated.
        let mut two = good.clone();
        two.extend_from_slice(&bad_sync);
        assert_eq!(
            rewrite_into(&two, 0, &mut cc, &mut out),
            Err(TsError::Sync(1))
        );
        assert!(out.is_empty());
        rewrite_into(&good, 0, &mut cc, &mut out).unwrap();
        assert_eq!(out[3] & 0x0f, 0, "first packet of a PID keeps its counter");
        assert!(program_streams(&good).is_err());
        assert!(program_streams(&[]).is_err());
    }

    #[test]
    fn continuity_counters_continue_across_buffers_and_skip_adaptation_only() {
        let mut cc = ContinuityCounters::default();
        let mut out = Vec::new();
        // Chunk A: CC 0,1 on PID 256, then adaptation-only, then CC 2.
        let mut a = pes_packet(256, 0, None, 0, None);
        a.extend(pes_packet(256, 1, None, 3000, None));
        a.extend(adaptation_only(256, 1));
        a.extend(pes_packet(257, 9, None, 0, None));
        a.extend(pes_packet(256, 2, None, 6000, None));
        rewrite_into(&a, 0, &mut cc, &mut out).unwrap();
        // Chunk B restarts its counters at 0, as a freshly cut clip does.
        let mut b = pes_packet(256, 0, None, 9000, None);
        b.extend(pes_packet(257, 0, None, 0, None));
        rewrite_into(&b, 360_000, &mut cc, &mut out).unwrap();
        let got: Vec<(u16, u8)> = out
            .chunks(PACKET_LEN)
            .map(|p| {
                let h = parse_header(p, 0).unwrap();
                (h.pid, h.continuity_counter)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (256, 0),
                (256, 1),
                (256, 1),
                (257, 9),
                (256, 2),
                (256, 3),
                (257, 10)
            ]
        );
        assert_eq!(
            pes_pts(&out[5 * PACKET_LEN..6 * PACKET_LEN], 0),
            Ok(Some(369_000))
        );
        // Counters wrap after 15.
        let mut cc = ContinuityCounters::default();
        let mut out = Vec::new();
        for _ in 0..17 {
            rewrite_into(&pes_packet(300, 7, None, 0, None), 0, &mut cc, &mut out).unwrap();
        }
        let ccs: Vec<u8> = out.chunks(PACKET_LEN).map(|p| p[3] & 0xf).collect();
        assert_eq!(ccs[..3], [7, 8, 9]);
        assert_eq!(ccs[8..11], [15, 0, 1]);
    }

    proptest::proptest! {
        /// Whatever the bytes, the parsers answer with a value or an error, never a panic, and
        /// a failed rewrite leaves the output untouched.
        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200),
            sync in proptest::prelude::any::<bool>(),
            offset in proptest::prelude::any::<u64>(),
        ) {
            let mut data = data;
            if sync {
                // Mostly valid-looking packets, so the deeper branches run too.
                for p in data.chunks_mut(PACKET_LEN) {
                    p[0] = SYNC_BYTE;
                }
            }
            let mut out = vec![1, 2, 3];
            let mut cc = ContinuityCounters::default();
            if rewrite_into(&data, offset, &mut cc, &mut out).is_err() {
                proptest::prop_assert_eq!(&out, &vec![1, 2, 3]);
            } else {
                proptest::prop_assert_eq!(out.len(), 3 + data.len());
            }
            let _ = program_streams(&data);
            let _ = first_pes_payload(&data, 256);
            let _ = annexb_nal_units(&data);
            for (i, p) in data.chunks(PACKET_LEN).enumerate() {
                let _ = pes_pts(p, i);
                let mut p = p.to_vec();
                let _ = shift_packet(&mut p, offset, i);
            }
        }

        /// Shifting by a then by b is shifting by a + b, modulo 2^33.
        #[test]
        fn shifts_compose(pts in 0..TS_WRAP, pcr in 0..TS_WRAP, a in 0..TS_WRAP, b in 0..TS_WRAP) {
            let mut p1 = pes_packet(256, 0, Some(pcr), pts, Some(pts));
            let mut p2 = p1.clone();
            shift_packet(&mut p1, a, 0).unwrap();
            shift_packet(&mut p1, b, 0).unwrap();
            shift_packet(&mut p2, (a + b) % TS_WRAP, 0).unwrap();
            proptest::prop_assert_eq!(p1, p2);
        }
    }

    #[test]
    fn nal_units_split_on_3_and_4_byte_start_codes() {
        let es = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x28, 0, 0, 1, 0x68, 0xee, 0, 0,
            1, 0x65, 0x88,
        ];
        let types: Vec<u8> = annexb_nal_units(&es).iter().map(|(t, _)| *t).collect();
        assert_eq!(types, vec![9, 7, 8, 5]);
        assert_eq!(annexb_nal_units(&es)[1].1, &[0x67, 0x4d, 0x40, 0x28]);
        assert!(annexb_nal_units(&[0, 0, 1]).is_empty());
    }
}
