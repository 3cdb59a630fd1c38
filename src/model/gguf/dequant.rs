//! Dequantisation of ggml's tensor types to f32, block by block.

use super::container::GgmlType;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

// ---------------------------------------------------------------------------
// Dequantisation

pub(crate) const SUPPORTED_TYPES: &str = "F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

/// Decodes `n` values of type `ty` from `raw` (which must be exactly their size).
pub fn dequantize(ty: GgmlType, raw: &[u8], n: u64) -> Result<Vec<f32>, String> {
    let n = usize::try_from(n).map_err(|_| "too many values for this machine".to_string())?;
    let mut out = vec![0f32; n];
    dequantize_into(ty, raw, &mut out)?;
    Ok(out)
}

/// Decodes `raw` into a new CPU float tensor of `shape` (no intermediate copy:
/// for a 135M-parameter model that halves the load time of a debug build).
pub fn dequantize_tensor(ty: GgmlType, raw: &[u8], shape: &[i64]) -> Result<Tensor, String> {
    let t = Tensor::f_empty(shape, (Kind::Float, Device::Cpu)).map_err(|e| e.to_string())?;
    let n = t.numel();
    if n > 0 {
        // SAFETY: `t` was just allocated as a contiguous CPU f32 tensor of `n`
        // elements; nothing else refers to its storage while `out` lives.
        let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n) };
        dequantize_into(ty, raw, out)?;
    }
    Ok(t)
}

/// Decodes `raw` into `out`, whose length is the number of values.
pub fn dequantize_into(ty: GgmlType, raw: &[u8], out: &mut [f32]) -> Result<(), String> {
    let (block, block_bytes) = ty.layout().ok_or_else(|| format!("icdbench cannot dequantise {ty} (it reads {SUPPORTED_TYPES})"))?;
    let n = out.len() as u64;
    if n % block != 0 || (n / block).checked_mul(block_bytes) != Some(raw.len() as u64) {
        return Err(format!("{n} values of {ty} need {} bytes, found {}", (n / block).saturating_mul(block_bytes), raw.len()));
    }
    let (block, block_bytes) = (block as usize, block_bytes as usize);
    let f: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => block_f32,
        GgmlType::F16 => block_f16,
        GgmlType::BF16 => block_bf16,
        GgmlType::F64 => block_f64,
        GgmlType::Q4_0 => block_q4_0,
        GgmlType::Q4_1 => block_q4_1,
        GgmlType::Q5_0 => block_q5_0,
        GgmlType::Q5_1 => block_q5_1,
        GgmlType::Q8_0 => block_q8_0,
        GgmlType::Q2_K => block_q2_k,
        GgmlType::Q3_K => block_q3_k,
        GgmlType::Q4_K => block_q4_k,
        GgmlType::Q5_K => block_q5_k,
        GgmlType::Q6_K => block_q6_k,
        _ => return Err(format!("icdbench cannot dequantise {ty} (it reads {SUPPORTED_TYPES})")),
    };
    // Hand each rayon task a few thousand values (per-task overhead matters in debug builds).
    let per_task = 4096 / block;
    out.par_chunks_mut(block * per_task).zip(raw.par_chunks(block_bytes * per_task)).for_each(|(o, r)| {
        for (ob, rb) in o.chunks_exact_mut(block).zip(r.chunks_exact(block_bytes)) {
            f(rb, ob);
        }
    });
    Ok(())
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn block_f32(b: &[u8], out: &mut [f32]) {
    out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
}

fn block_f16(b: &[u8], out: &mut [f32]) {
    out[0] = f16_at(b, 0);
}

fn block_bf16(b: &[u8], out: &mut [f32]) {
    out[0] = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
}

fn block_f64(b: &[u8], out: &mut [f32]) {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    out[0] = f64::from_le_bytes(a) as f32;
}

/// Q4_0: scale d (f16), 16 bytes of 4-bit values; low nibbles are values 0..16, high nibbles 16..32; x = (q - 8) * d.
fn block_q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        out[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
        out[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: scale d and minimum m (f16), 4-bit values laid out as Q4_0; x = q * d + m.
fn block_q4_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        out[j] = (qs[j] & 0x0f) as f32 * d + m;
        out[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// The fifth bits of Q5_0 / Q5_1: bit j of the 32-bit word belongs to value j.
fn fifth_bit(qh: u32, j: usize) -> u8 {
    (((qh >> j) & 1) << 4) as u8
}

/// Q5_0: d (f16), 32 high bits, 16 bytes of low nibbles (as Q4_0); x = (q - 16) * d.
fn block_q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let lo = (qs[j] & 0x0f) | fifth_bit(qh, j);
        let hi = (qs[j] >> 4) | fifth_bit(qh, j + 16);
        out[j] = (lo as i32 - 16) as f32 * d;
        out[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

/// Q5_1: d and m (f16), 32 high bits, low nibbles; x = q * d + m.
fn block_q5_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let lo = (qs[j] & 0x0f) | fifth_bit(qh, j);
        let hi = (qs[j] >> 4) | fifth_bit(qh, j + 16);
        out[j] = lo as f32 * d + m;
        out[j + 16] = hi as f32 * d + m;
    }
}

/// Q8_0: d (f16), 32 signed bytes; x = q * d.
fn block_q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = (q as i8) as f32 * d;
    }
}

/// Q2_K super-block (256 values): 16 bytes of 4-bit scale/min pairs, 64 bytes of
/// 2-bit values, d and dmin (f16). Each 16-value group: x = d*scale*q - dmin*min.
fn block_q2_k(b: &[u8], out: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    let mut y = 0;
    let mut is = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0u32, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0f) as f32;
                let ml = dmin * (sc >> 4) as f32;
                for l in 0..16 {
                    out[y] = dl * ((q[part * 16 + l] >> shift) & 3) as f32 - ml;
                    y += 1;
                }
            }
        }
    }
}

/// Q3_K super-block: 32 bytes of high bits, 64 bytes of 2-bit low parts, 12 bytes
/// packing sixteen 6-bit scales, d (f16). x = d * (scale - 32) * (q - 4 if the high bit is clear).
fn block_q3_k(b: &[u8], out: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let packed = &b[96..108];
    let d = f16_at(b, 108);
    // Scale i: low 4 bits from byte i % 8 (low nibble for i < 8, high for i >= 8),
    // top 2 bits from byte 8 + i % 4, at bit position 2 * (i / 4).
    let mut scales = [0i32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = if i < 8 { packed[i] & 0x0f } else { packed[i - 8] >> 4 };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = (low | (high << 4)) as i32 - 32;
    }
    let mut y = 0;
    let mut is = 0;
    let mut bit = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0u32, 2, 4, 6] {
            let m = 1u8 << bit;
            for part in 0..2 {
                let dl = d * scales[is] as f32;
                is += 1;
                for l in 0..16 {
                    let k = part * 16 + l;
                    let low = ((q[k] >> shift) & 3) as i32;
                    let v = if hmask[k] & m != 0 { low } else { low - 4 };
                    out[y] = dl * v as f32;
                    y += 1;
                }
            }
            bit += 1;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (of 8) in Q4_K / Q5_K's 12 packed bytes:
/// sub-blocks 0..4 keep theirs in the low 6 bits of bytes j and j+4; 4..8 split
/// theirs between byte j+4's nibbles and the top 2 bits of bytes j-4 and j.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q4_K super-block: d, dmin (f16), 12 bytes of scales/mins, 128 bytes of nibbles;
/// each 64 values share 32 bytes (low nibbles first). x = d*scale*q - dmin*min.
fn block_q4_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        let (s1, m1) = scale_min_k4(2 * chunk, scales);
        let (s2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * s2 as f32, dmin * m2 as f32);
        let y = &mut out[chunk * 64..chunk * 64 + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0f) as f32 - min1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

/// Q5_K super-block: as Q4_K plus 32 bytes of fifth bits (bit 2c of byte l for
/// the low-nibble value of chunk c, bit 2c+1 for the high-nibble value).
fn block_q5_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        let (s1, m1) = scale_min_k4(2 * chunk, scales);
        let (s2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * s2 as f32, dmin * m2 as f32);
        let (u1, u2) = (1u8 << (2 * chunk), 1u8 << (2 * chunk + 1));
        let y = &mut out[chunk * 64..chunk * 64 + 64];
        for l in 0..32 {
            let lo = (q[l] & 0x0f) + if qh[l] & u1 != 0 { 16 } else { 0 };
            let hi = (q[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * lo as f32 - min1;
            y[l + 32] = d2 * hi as f32 - min2;
        }
    }
}

/// Q6_K super-block: 128 bytes of low nibbles, 64 bytes of 2-bit high parts,
/// sixteen signed 8-bit scales, d (f16). x = d * scale * (q - 32).
fn block_q6_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let y = &mut out[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| (sc[k] as i8) as f32;
            y[l] = d * s(is) * q1 as f32;
            y[l + 32] = d * s(is + 2) * q2 as f32;
            y[l + 64] = d * s(is + 4) * q3 as f32;
            y[l + 96] = d * s(is + 6) * q4 as f32;
        }
    }
}
