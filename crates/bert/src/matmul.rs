//! Packed matrix products for the CPU: `C += A · B` with AVX-512 f32 FMAs, or with AVX-512 BF16
//! dot products (`vdpbf16ps`: bf16 products, f32 accumulation) where the CPU has them.
//!
//! Written here rather than taken from the `gemm` crate (which the runtime used before and still
//! uses where AVX-512 is missing) because at BERT-base shapes on 2 cores that crate reached about
//! 0.77× the FLOP rate of MKL through PyTorch and has no BF16 dot-product kernel; this one is the
//! textbook BLIS design (Goto & van de Geijn; Van Zee & van de Geijn 2015), sized for AVX-512:
//! `B` is packed into panels of [`NR`] columns shared by the threads ([`PACKED_B_BYTES`] at a
//! time), each thread packs its own [`MC`]-row blocks of `A` into tiles of [`MR`] rows, and a
//! register-blocked micro-kernel keeps an 8 × 48 tile of `C` in 24 vector registers. Packing
//! reads its source in order (a row-major `B` row by row, a transposed one and `A` in 16 × 16
//! blocks transposed in registers). Measured in docs/performance.md ("GEMM").
//!
//! Every element of `C` is summed in the same order (its starting value, then the `KC`-deep
//! blocks in order, each in `k` order) whatever the number of threads, the number of rows or
//! the row's position, so a sentence's numbers never depend on its batch.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Rows of `C` per micro-kernel tile.
pub const MR: usize = 8;
/// Columns of `C` per micro-kernel tile.
pub const NR: usize = 16 * VECTORS;
/// 16-float vectors per tile row.
const VECTORS: usize = 3;
/// Depth of one packed block of `A` and `B` (even, so bf16 pairs never straddle two blocks).
pub const KC: usize = 256;
/// Rows of `A` packed at a time by one thread (a whole number of tiles).
pub const MC: usize = 12 * MR;
/// Rows of `B` per block when packing a transposed `B` (a multiple of 2 for bf16 pairs).
const TRANSPOSE: usize = 16;
/// Fewest rows of a row-major `B` packed by one task (even, for bf16 pairs).
const PACK_ROWS: usize = 16;
/// Most bytes of `B` packed at a time (whole panels, all rows; within a server's L3).
pub const PACKED_B_BYTES: usize = 32 << 20;

/// How the products are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    /// f32 products, f32 sums (fused multiply-adds).
    F32,
    /// Both factors rounded to bf16 (nearest even), products summed in f32.
    Bf16,
}

impl Products {
    /// Whether this CPU has the instructions for these kernels.
    pub fn available(self) -> bool {
        match self {
            Products::F32 => is_x86_feature_detected!("avx512f"),
            Products::Bf16 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
        }
    }
}

/// A read-only strided matrix: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// The view, or `None` when an element would lie outside `data`.
    pub fn new(data: &'a [T], (rows, cols): (usize, usize), (row_stride, col_stride): (usize, usize)) -> Option<Self> {
        let last = match rows * cols {
            0 => 0,
            _ => (rows - 1) * row_stride + (cols - 1) * col_stride + 1,
        };
        (last <= data.len()).then_some(MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A row-major `[rows, cols]` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Option<Self> {
        MatRef::new(data, (rows, cols), (cols, 1))
    }

    /// The transpose of a row-major `[cols, rows]` matrix (a checkpoint's `[out, in]` weight read
    /// as `[in, out]`).
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Option<Self> {
        MatRef::new(data, (rows, cols), (1, rows))
    }

    /// Column `j` as one contiguous slice, when it is stored so (a transposed row-major matrix).
    fn column(&self, j: usize) -> Option<&'a [T]> {
        (self.row_stride == 1).then(|| &self.data[j * self.col_stride..][..self.rows])
    }

    fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// A factor's element type: f32, or bf16 as stored by a bf16 model.
pub trait Factor: Copy + Send + Sync {
    /// Bits per value (32 for f32, 16 for bf16): packing moves values unchanged where they are
    /// already of the products' type.
    const BITS: u32;
    /// The value as f32.
    fn to_f32(self) -> f32;
    /// The value's bf16 bits, rounded to nearest even.
    fn bf16_bits(self) -> u16;
}

impl Factor for f32 {
    const BITS: u32 = 32;
    fn to_f32(self) -> f32 {
        self
    }
    fn bf16_bits(self) -> u16 {
        half::bf16::from_f32(self).to_bits()
    }
}

impl Factor for half::bf16 {
    const BITS: u32 = 16;
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn bf16_bits(self) -> u16 {
        self.to_bits()
    }
}

/// `c += a · b` for `c` row-major `[a.rows, b.cols]` with row stride `ldc`, computed with
/// `products` on every thread of the current rayon pool. The caller checks
/// [`Products::available`] first.
///
/// # Panics
/// When the shapes disagree or `c` is too short; when the CPU lacks the kernels' instructions.
pub fn gemm<B: Factor>(c: &mut [f32], ldc: usize, a: MatRef<f32>, b: MatRef<B>, products: Products) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions");
    assert!(ldc >= n && (m == 0 || c.len() >= (m - 1) * ldc + n), "output too small");
    assert!(products.available(), "{products:?} kernels need AVX-512 on this CPU");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    // Each thread takes its own rows where there are enough of them, else its own panels.
    let threads = rayon::current_num_threads();
    let row_chunks = threads.min(m.div_ceil(MR));
    let panel_chunks = (threads / row_chunks).max(1);
    let rows_per = m.div_ceil(row_chunks).next_multiple_of(MR);
    let out = SharedOut(c.as_mut_ptr(), c.len());
    let mut packed = Packed::new(products);
    let block_panels = (PACKED_B_BYTES / (k * NR * 4)).max(1);
    for first in (0..panels).step_by(block_panels) {
        let block_panels = first..(first + block_panels).min(panels);
        let panels_per = block_panels.len().div_ceil(panel_chunks);
        packed.pack_b(b, block_panels.clone());
        (0..row_chunks * panel_chunks).into_par_iter().for_each(|task| {
            let (row_chunk, panel_chunk) = (task / panel_chunks, task % panel_chunks);
            let rows = row_chunk * rows_per..((row_chunk + 1) * rows_per).min(m);
            let from = block_panels.start + panel_chunk * panels_per;
            let own = from..(from + panels_per).min(block_panels.end);
            if !rows.is_empty() && !own.is_empty() {
                // SAFETY: tasks cover disjoint (rows, panels) blocks of `c`, in bounds (checked above).
                unsafe { block(&out, ldc, n, a, &packed, rows, own, first) }
            }
        });
    }
}

/// An output buffer's pointer and length shared by the tasks, each writing its own elements.
struct SharedOut<T = f32>(*mut T, usize);
// SAFETY: tasks write disjoint elements.
unsafe impl<T> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// `len` elements from `start`, for one task to write.
    ///
    /// # Safety
    /// No other task uses these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.1, "inside the buffer");
        // SAFETY: in bounds (above); the caller's contract for exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// A block of `B` (all its rows, at most [`PACKED_B_BYTES`] of columns) packed into panels: for f32, `[panel][k][NR]`;
/// for bf16, `[panel][k / 2][NR]` of `u32`s, each holding the bf16 pair `(k, k + 1)` of one
/// column (low half first), depth padded to even. Missing columns are zero.
enum Packed {
    F32(Vec<f32>, usize),
    Bf16(Vec<u32>, usize),
}

impl Packed {
    fn new(products: Products) -> Packed {
        match products {
            Products::F32 => Packed::F32(Vec::new(), 0),
            Products::Bf16 => Packed::Bf16(Vec::new(), 0),
        }
    }

    /// Pack columns `panels` × `NR` of `b`, in parallel over panels.
    fn pack_b<B: Factor>(&mut self, b: MatRef<B>, panels: std::ops::Range<usize>) {
        let n = b.cols;
        let depth = 0..b.rows;
        let kc = depth.len();
        match self {
            Packed::F32(data, stored) => {
                *stored = kc;
                data.clear();
                data.resize(panels.len() * kc * NR, 0.0);
                if b.col_stride == 1 {
                    // Whole rows, each read once in sequence (threads take blocks of rows), its
                    // stretches written to every panel.
                    let out = SharedOut(data.as_mut_ptr(), data.len());
                    let columns = panels.start * NR..(panels.end * NR).min(n);
                    (0..kc).into_par_iter().with_min_len(PACK_ROWS).for_each(|k| {
                        let row = &b.data[k * b.row_stride..][columns.clone()];
                        for (p, stretch) in row.chunks(NR).enumerate() {
                            // SAFETY: row `k` of panel `p`, written by this task only.
                            let dst = unsafe { out.part((p * kc + k) * NR, stretch.len()) };
                            dst.iter_mut().zip(stretch).for_each(|(d, v)| *d = v.to_f32());
                        }
                    });
                    return;
                }
                data.par_chunks_mut(kc * NR).zip(panels).for_each(|(dst, panel)| {
                    let cols = NR.min(n - panel * NR);
                    if b.column(panel * NR).is_some() {
                        // A transpose: where `b` holds f32, 16 × 16 blocks in registers; the rest
                        // `TRANSPOSE` rows at a time so that the rows written stay in L1.
                        let vectored = if B::BITS == 32 { kc / 16 * 16 } else { 0 };
                        let whole = cols / 16 * 16;
                        // SAFETY: `b` holds f32 (`BITS`), one per 32-bit lane.
                        unsafe { transpose_panel(b, panel, (vectored, whole), 1, dst) };
                        for k0 in (0..kc).step_by(TRANSPOSE) {
                            let rows = TRANSPOSE.min(kc - k0);
                            let done = if k0 < vectored { whole } else { 0 };
                            for j in done..cols {
                                let column = &b.column(panel * NR + j).expect("contiguous")[k0..k0 + rows];
                                for (kk, value) in column.iter().enumerate() {
                                    dst[(k0 + kk) * NR + j] = value.to_f32();
                                }
                            }
                        }
                        return;
                    }
                    for j in 0..cols {
                        for (kk, k) in depth.clone().enumerate() {
                            dst[kk * NR + j] = b.at(k, panel * NR + j).to_f32();
                        }
                    }
                });
            }
            Packed::Bf16(data, stored) => {
                let pairs = kc.div_ceil(2);
                *stored = pairs;
                data.clear();
                data.resize(panels.len() * pairs * NR, 0);
                if b.col_stride == 1 {
                    // As for f32, a pair of rows at a time.
                    let out = SharedOut(data.as_mut_ptr(), data.len());
                    let columns = panels.start * NR..(panels.end * NR).min(n);
                    (0..pairs).into_par_iter().with_min_len(PACK_ROWS / 2).for_each(|p| {
                        let low = &b.data[2 * p * b.row_stride..][columns.clone()];
                        let high = (2 * p + 1 < kc).then(|| &b.data[(2 * p + 1) * b.row_stride..][columns.clone()]);
                        for (panel, start) in (0..columns.len()).step_by(NR).enumerate() {
                            let cols = NR.min(columns.len() - start);
                            // SAFETY: pair `p` of panel `panel`, written by this task only.
                            let dst = unsafe { out.part((panel * pairs + p) * NR, cols) };
                            let low = &low[start..start + cols];
                            match high {
                                Some(high) => dst
                                    .iter_mut()
                                    .zip(low.iter().zip(&high[start..start + cols]))
                                    .for_each(|(d, (l, h))| *d = l.bf16_bits() as u32 | (h.bf16_bits() as u32) << 16),
                                None => dst.iter_mut().zip(low).for_each(|(d, l)| *d = l.bf16_bits() as u32),
                            }
                        }
                    });
                    return;
                }
                data.par_chunks_mut(pairs * NR).zip(panels).for_each(|(dst, panel)| {
                    let cols = NR.min(n - panel * NR);
                    if b.column(panel * NR).is_some() {
                        // As for f32. Where `b` holds bf16 with an even column stride, a column's
                        // pair `(k, k + 1)` (`k` even) is the 32 bits at row `k`, so 16 columns ×
                        // 16 pairs transpose in registers.
                        let vectored = if B::BITS == 16 && b.col_stride.is_multiple_of(2) {
                            kc / 32 * 32
                        } else {
                            0
                        };
                        let whole = cols / 16 * 16;
                        // SAFETY: `b` holds bf16 (`BITS`), two per 32-bit lane, an even number
                        // of values apart from column to column.
                        unsafe { transpose_panel(b, panel, (vectored, whole), 2, dst) };
                        // The rest `TRANSPOSE` rows (half as many pairs) at a time.
                        for k0 in (0..kc).step_by(TRANSPOSE) {
                            let rows = TRANSPOSE.min(kc - k0);
                            let done = if k0 < vectored { whole } else { 0 };
                            for j in done..cols {
                                let column = &b.column(panel * NR + j).expect("contiguous")[k0..k0 + rows];
                                for (p, pair) in column.chunks(2).enumerate() {
                                    let high = pair.get(1).map_or(0, |v| v.bf16_bits() as u32);
                                    dst[(k0 / 2 + p) * NR + j] = pair[0].bf16_bits() as u32 | high << 16;
                                }
                            }
                        }
                        return;
                    }
                    for j in 0..cols {
                        let col = panel * NR + j;
                        for p in 0..pairs {
                            let k = depth.start + 2 * p;
                            let low = b.at(k, col).bf16_bits() as u32;
                            let high = match k + 1 < depth.end {
                                true => b.at(k + 1, col).bf16_bits() as u32,
                                false => 0,
                            };
                            dst[p * NR + j] = low | high << 16;
                        }
                    }
                });
            }
        }
    }
}

/// The register-transposed part of packing panel `panel` of a transposed `b` (columns
/// contiguous) into `dst` (`[depth / lane][NR]` of 32-bit slots): its first `rows` rows and
/// `cols` columns (multiples of `16 · lane` and 16), 16 columns × 16 slots of `lane` values each
/// at a time.
///
/// # Safety
/// AVX-512F present (checked by `gemm`); `B` is `lane` values per 32 bits (f32: 1, bf16: 2) and
/// `b.col_stride` a multiple of `lane`; `dst` holds the panel.
unsafe fn transpose_panel<B: Factor, D>(
    b: MatRef<B>,
    panel: usize,
    (rows, cols): (usize, usize),
    lane: usize,
    dst: &mut [D],
) {
    assert!(std::mem::size_of::<D>() == 4 && rows / lane * NR <= dst.len() && b.row_stride == 1);
    for k0 in (0..rows).step_by(16 * lane) {
        for j0 in (0..cols).step_by(16) {
            let col = panel * NR + j0;
            assert!((col + 15) * b.col_stride + k0 + 16 * lane <= b.data.len(), "inside `b`");
            // SAFETY: columns `col..col + 16` hold rows `k0..k0 + 16 · lane` contiguously (in
            // bounds, above), 16 slots each, `col_stride / lane` slots apart; the 16 destination
            // rows of 16 slots lie in `dst` (above); the caller's contract for the rest.
            unsafe {
                transpose_block(
                    b.data.as_ptr().add(col * b.col_stride + k0).cast(),
                    b.col_stride / lane,
                    dst.as_mut_ptr().add(k0 / lane * NR + j0).cast(),
                    NR,
                )
            }
        }
    }
}

/// One task: rows `rows` of `c` over the panels `panels` (of the packed block starting at panel
/// `first`), `MC` rows and `KC` of depth at a time.
///
/// # Safety
/// `out` points to `c` of the caller's shape; no other task writes these rows and panels.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    out: &SharedOut,
    ldc: usize,
    n: usize,
    a: MatRef<f32>,
    packed: &Packed,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    first: usize,
) {
    let mut packed_a_f32 = Vec::new();
    let mut packed_a_bf16 = Vec::new();
    let mut edge = [0f32; MR * NR];
    for (r0, k0) in rows
        .clone()
        .step_by(MC)
        .flat_map(|r0| (0..a.cols).step_by(KC).map(move |k0| (r0, k0)))
    {
        let mc = MC.min(rows.end - r0);
        let depth = k0..(k0 + KC).min(a.cols);
        match packed {
            Packed::F32(..) => pack_a_f32(&mut packed_a_f32, a, r0, mc, depth.clone()),
            Packed::Bf16(..) => pack_a_bf16(&mut packed_a_bf16, a, r0, mc, depth.clone()),
        }
        for panel in panels.clone() {
            let cols = NR.min(n - panel * NR);
            for tile in 0..mc.div_ceil(MR) {
                let row = r0 + tile * MR;
                let tile_rows = MR.min(rows.end - row);
                let full = tile_rows == MR && cols == NR;
                debug_assert!((row + tile_rows - 1) * ldc + panel * NR + cols <= out.1);
                // SAFETY (all accesses to `out`): the tile lies inside `c` (the caller's contract).
                let (dst, dst_ld) = match full {
                    true => (unsafe { out.0.add(row * ldc + panel * NR) }, ldc),
                    false => {
                        edge.fill(0.0);
                        for i in 0..tile_rows {
                            for j in 0..cols {
                                edge[i * NR + j] = unsafe { *out.0.add((row + i) * ldc + panel * NR + j) };
                            }
                        }
                        (edge.as_mut_ptr(), NR)
                    }
                };
                // SAFETY: the packed blocks hold this tile's and panel's depth; `dst` is a full
                // `MR × NR` tile with row stride `dst_ld`; the CPU has the kernels' features.
                unsafe {
                    match packed {
                        Packed::F32(b, k) => kernel_f32(
                            depth.len(),
                            packed_a_f32.as_ptr().add(tile * depth.len() * MR),
                            b.as_ptr().add((panel - first) * k * NR + k0 * NR),
                            dst,
                            dst_ld,
                        ),
                        Packed::Bf16(b, pairs) => {
                            let kp = depth.len().div_ceil(2);
                            kernel_bf16(
                                kp,
                                packed_a_bf16.as_ptr().add(tile * kp * MR),
                                b.as_ptr().add((panel - first) * pairs * NR + k0 / 2 * NR),
                                dst,
                                dst_ld,
                            )
                        }
                    }
                }
                if !full {
                    for i in 0..tile_rows {
                        for j in 0..cols {
                            unsafe { *out.0.add((row + i) * ldc + panel * NR + j) = edge[i * NR + j] };
                        }
                    }
                }
            }
        }
    }
}

/// Rows `r0..r0 + mc`, columns `depth` of `a` as tiles `[tile][k][MR]`, missing rows zero.
fn pack_a_f32(dst: &mut Vec<f32>, a: MatRef<f32>, r0: usize, mc: usize, depth: std::ops::Range<usize>) {
    let (k0, kc) = (depth.start, depth.len());
    let tiles = mc.div_ceil(MR);
    dst.clear();
    dst.resize(tiles * kc * MR, 0.0);
    let mut done = 0;
    if a.row_stride == 1 {
        // At one depth the block's rows are contiguous in `a`: each depth read once, in order.
        done = mc / MR * MR;
        for kk in 0..kc {
            let start = r0 + (k0 + kk) * a.col_stride;
            for (tile, values) in a.data[start..start + done].chunks_exact(MR).enumerate() {
                dst[(tile * kc + kk) * MR..][..MR].copy_from_slice(values);
            }
        }
    } else if a.col_stride == 1 {
        // Two tiles (16 rows) × 16 of depth at a time, transposed in registers.
        let depth16 = kc / 16 * 16;
        for i0 in (0..mc / 16 * 16).step_by(16) {
            for kk in (0..depth16).step_by(16) {
                // SAFETY: AVX-512F (checked by `gemm`); rows `r0 + i0..+16` of `a` hold columns
                // `k0 + kk..+16` contiguously; tiles `i0 / MR` and the next hold depth `kk..+16`.
                unsafe {
                    transpose_to_tiles(
                        a.data.as_ptr().add((r0 + i0) * a.row_stride + k0 + kk),
                        a.row_stride,
                        dst.as_mut_ptr().add((i0 / MR * kc + kk) * MR),
                        kc * MR,
                    )
                }
            }
            for i in i0..i0 + 16 {
                let tile = &mut dst[(i / MR) * kc * MR..][..kc * MR];
                for kk in depth16..kc {
                    tile[kk * MR + i % MR] = a.at(r0 + i, k0 + kk);
                }
            }
        }
        done = mc / 16 * 16;
    }
    for i in done..mc {
        let tile = &mut dst[(i / MR) * kc * MR..][..kc * MR];
        for kk in 0..kc {
            tile[kk * MR + i % MR] = a.at(r0 + i, k0 + kk);
        }
    }
}

/// The 16 × 16 block of 32-bit values whose row `i` is the 16 at `src + i · src_stride`, each
/// column written as a row at `dst + c · dst_stride`.
///
/// # Safety
/// AVX-512F present; the 16 source and destination rows lie in their allocations.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    // SAFETY: the caller's contract.
    let rows = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * src_stride)) });
    for (c, column) in transpose16(rows).into_iter().enumerate() {
        // SAFETY: the caller's contract.
        unsafe { _mm512_storeu_ps(dst.add(c * dst_stride), column) };
    }
}

/// As [`transpose_block`] for 16 rows of `A` (two tiles of `MR`): column `c`'s first `MR` values
/// go to `dst + c · MR`, its last `MR` to the next tile, `tile_stride` further.
///
/// # Safety
/// AVX-512F present; the 16 source rows and both tiles' 16 depths lie in their allocations.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_to_tiles(src: *const f32, src_stride: usize, dst: *mut f32, tile_stride: usize) {
    // SAFETY: the caller's contract.
    let rows = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * src_stride)) });
    for (c, column) in transpose16(rows).into_iter().enumerate() {
        let high = _mm512_shuffle_f32x4::<0b11_10_11_10>(column, column);
        // SAFETY: the caller's contract.
        unsafe {
            _mm256_storeu_ps(dst.add(c * MR), _mm512_castps512_ps256(column));
            _mm256_storeu_ps(dst.add(tile_stride + c * MR), _mm512_castps512_ps256(high));
        }
    }
}

/// The transpose of 16 vectors of 16 lanes (32-bit lanes moved unchanged).
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice.
    let t: [__m512; 16] = std::array::from_fn(|i| match i % 2 {
        0 => _mm512_unpacklo_ps(r[i], r[i + 1]),
        _ => _mm512_unpackhi_ps(r[i - 1], r[i]),
    });
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (base, k) = (i / 4 * 4, i % 4);
        let (x, y) = (t[base + k / 2], t[base + 2 + k / 2]);
        match k % 2 {
            0 => _mm512_shuffle_ps::<0x44>(x, y),
            _ => _mm512_shuffle_ps::<0xEE>(x, y),
        }
    });
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let (base, k) = (i / 8 * 8, i % 8);
        let (x, y) = (u[base + k % 4], u[base + 4 + k % 4]);
        match k / 4 {
            0 => _mm512_shuffle_f32x4::<0x88>(x, y),
            _ => _mm512_shuffle_f32x4::<0xDD>(x, y),
        }
    });
    std::array::from_fn(|i| {
        let (x, y) = (v[i % 8], v[8 + i % 8]);
        match i / 8 {
            0 => _mm512_shuffle_f32x4::<0x88>(x, y),
            _ => _mm512_shuffle_f32x4::<0xDD>(x, y),
        }
    })
}

/// As [`pack_a_f32`] in bf16 pairs: tiles `[tile][k / 2][MR]` of `u32`s (pair `(k, k + 1)` of a
/// row, low half first), depth padded to even with zeros.
fn pack_a_bf16(dst: &mut Vec<u32>, a: MatRef<f32>, r0: usize, mc: usize, depth: std::ops::Range<usize>) {
    let (k0, kc) = (depth.start, depth.len());
    let tiles = mc.div_ceil(MR);
    let pairs = kc.div_ceil(2);
    dst.clear();
    dst.resize(tiles * pairs * MR, 0);
    let mut row = vec![0u16; 2 * pairs];
    for i in 0..mc {
        match a.col_stride {
            // SAFETY: AVX-512 BF16 is present (checked by `gemm`); the row's `kc` values are in `a`.
            1 => unsafe { round_to_bf16(&a.data[(r0 + i) * a.row_stride + k0..][..kc], &mut row) },
            _ => (0..kc).for_each(|kk| row[kk] = a.at(r0 + i, k0 + kk).bf16_bits()),
        }
        let tile = &mut dst[(i / MR) * pairs * MR..][..pairs * MR];
        for p in 0..pairs {
            tile[p * MR + i % MR] = row[2 * p] as u32 | (row[2 * p + 1] as u32) << 16;
        }
    }
}

/// `values` rounded to bf16 (nearest even) into the front of `bits`.
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
unsafe fn round_to_bf16(values: &[f32], bits: &mut [u16]) {
    let chunks = values.len() / 16;
    for c in 0..chunks {
        // SAFETY: chunk `c` holds 16 values of `values` and 16 slots of `bits`.
        unsafe {
            let x = _mm512_loadu_ps(values.as_ptr().add(16 * c));
            let rounded: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(x));
            _mm256_storeu_si256(bits.as_mut_ptr().add(16 * c).cast(), rounded);
        }
    }
    for i in 16 * chunks..values.len() {
        bits[i] = values[i].bf16_bits();
    }
    bits[values.len()..].fill(0);
}

/// Ask for the `MR × NR` tile of `C` at `c` (row stride `ldc`) while the products run: the sums
/// go into it at the end.
///
/// # Safety
/// AVX-512F present; the tile lies in one allocation.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn prefetch_tile(c: *mut f32, ldc: usize) {
    for i in 0..MR {
        for v in 0..VECTORS {
            // SAFETY: the caller's contract (a prefetch never faults; the address is in bounds).
            _mm_prefetch::<_MM_HINT_T0>(unsafe { c.add(i * ldc + 16 * v) }.cast());
        }
    }
}

/// The tile of `C` at `c` (row stride `ldc`) plus the accumulated sums, written back.
///
/// # Safety
/// AVX-512F present; the tile lies in one allocation.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn add_to_tile(c: *mut f32, ldc: usize, sums: &[[__m512; VECTORS]; MR]) {
    for (i, row) in sums.iter().enumerate() {
        for (v, sum) in row.iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe {
                let dst = c.add(i * ldc + 16 * v);
                _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), *sum));
            }
        }
    }
}

/// `C[MR × NR] += A · B` over `kc` of depth: `a` a packed tile `[kc][MR]`, `b` a packed panel
/// `[kc][NR]`, `c` row-major with row stride `ldc`.
///
/// # Safety
/// AVX-512F present; the pointers cover the sizes above.
#[target_feature(enable = "avx512f")]
unsafe fn kernel_f32(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        prefetch_tile(c, ldc);
        let mut acc = [[_mm512_setzero_ps(); VECTORS]; MR];
        for kk in 0..kc {
            let bs: [__m512; VECTORS] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(kk * NR + 16 * v)));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(kk * MR + i));
                for (sum, bv) in row.iter_mut().zip(bs) {
                    *sum = _mm512_fmadd_ps(ai, bv, *sum);
                }
            }
        }
        add_to_tile(c, ldc, &acc);
    }
}

/// As [`kernel_f32`] over `pairs` bf16 pairs of depth: `a` `[pairs][MR]`, `b` `[pairs][NR]` of
/// `u32` bf16 pairs.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 present; the pointers cover the sizes above.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel_bf16(pairs: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        prefetch_tile(c, ldc);
        let mut acc = [[_mm512_setzero_ps(); VECTORS]; MR];
        for p in 0..pairs {
            let bs: [__m512bh; VECTORS] =
                std::array::from_fn(|v| std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16 * v).cast())));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(p * MR + i) as i32));
                for (sum, bv) in row.iter_mut().zip(bs) {
                    *sum = _mm512_dpbf16_ps(*sum, ai, bv);
                }
            }
        }
        add_to_tile(c, ldc, &acc);
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    use super::*;

    /// The definition, in f64: `c0 + Σ_k a(i, k) b(k, j)` with the factors as the kernel sees them.
    fn reference(c0: &[f32], a: &MatRef<f32>, b: &[f32], n: usize, round: fn(f32) -> f32) -> Vec<f64> {
        let (m, k) = (a.rows, a.cols);
        (0..m * n)
            .map(|idx| {
                let (i, j) = (idx / n, idx % n);
                c0[idx] as f64
                    + (0..k)
                        .map(|kk| round(a.at(i, kk)) as f64 * round(b[kk * n + j]) as f64)
                        .sum::<f64>()
            })
            .collect()
    }

    fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| rng.next_u32() as f32 / 2_147_483_648.0 - 1.0)
            .collect()
    }

    /// Every edge (rows, columns and depth not multiples of the blocking, strided and transposed
    /// operands, `B` in several packed blocks), both precisions, against the f64 definition.
    #[test]
    fn products_match_the_definition_on_every_edge() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let bf16 = |x: f32| half::bf16::from_f32(x).to_f32();
        for (m, k, n) in [
            (1, 1, 1),
            (13, 7, 33),
            (8, 256, 48),
            (150, 300, 70),
            (5, 513, 100),
            (40, 64, 64),
            (40, 2, 3),
            (3, 9, 1100),
            // `B` packed in two blocks (more than `PACKED_B_BYTES`).
            (2, 600, 15_000),
        ] {
            let a_data = random(&mut rng, m * k);
            let b_data = random(&mut rng, k * n);
            let c0 = random(&mut rng, m * n);
            let a = MatRef::row_major(&a_data, m, k).unwrap();
            // `b` stored as its transpose `[n, k]`, as checkpoint weights are.
            let b_t: Vec<f32> = (0..n * k).map(|idx| b_data[(idx % k) * n + idx / k]).collect();
            for (products, round, tolerance) in [
                (Products::F32, (|x| x) as fn(f32) -> f32, 1e-5),
                (Products::Bf16, bf16, 1e-4),
            ] {
                if !products.available() {
                    eprintln!("skipped: no {products:?} kernels on this CPU");
                    continue;
                }
                let expected = reference(&c0, &a, &b_data, n, round);
                // Every packing path: rows contiguous, columns contiguous, neither (every other
                // element of a wider buffer); `a` also read through its transpose's strides.
                let b_spread: Vec<f32> = b_data.iter().flat_map(|&v| [v, f32::NAN]).collect();
                let a_t: Vec<f32> = (0..k * m).map(|idx| a_data[(idx % m) * k + idx / m]).collect();
                let a_transposed = MatRef::transposed(&a_t, m, k).unwrap();
                let check = |c: &[f32], what: &str| {
                    for (idx, (&got, &want)) in c.iter().zip(&expected).enumerate() {
                        let scale = 1.0 + (k as f64).sqrt();
                        assert!(
                            (got as f64 - want).abs() <= tolerance * scale,
                            "{products:?} {what} {m}×{k}×{n} at {idx}: {got} vs {want}"
                        );
                    }
                };
                for (what, a, b) in [
                    ("rows", a, MatRef::row_major(&b_data, k, n).unwrap()),
                    ("transposed", a, MatRef::transposed(&b_t, k, n).unwrap()),
                    (
                        "strided",
                        a_transposed,
                        MatRef::new(&b_spread, (k, n), (2 * n, 2)).unwrap(),
                    ),
                ] {
                    let mut c = c0.clone();
                    gemm(&mut c, n, a, b, products);
                    check(&c, what);
                }
                if products == Products::Bf16 {
                    // Weights stored in bf16, as a bf16 model's.
                    let b_t: Vec<half::bf16> = b_t.iter().map(|&v| half::bf16::from_f32(v)).collect();
                    let mut c = c0.clone();
                    gemm(&mut c, n, a, MatRef::transposed(&b_t, k, n).unwrap(), products);
                    check(&c, "bf16 transposed");
                }
            }
        }
    }

    /// A row's result does not depend on the other rows, their number or the thread count.
    #[test]
    fn a_row_is_computed_the_same_in_any_batch() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (k, n) = (300, 70);
        let b_data = random(&mut rng, k * n);
        let b = MatRef::row_major(&b_data, k, n).unwrap();
        let all = random(&mut rng, 50 * k);
        for products in [Products::F32, Products::Bf16].into_iter().filter(|p| p.available()) {
            let mut whole = vec![0f32; 50 * n];
            gemm(&mut whole, n, MatRef::row_major(&all, 50, k).unwrap(), b, products);
            for (start, rows, threads) in [(0, 1, 1), (17, 5, 2), (37, 13, 3)] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut part = vec![0f32; rows * n];
                let a = MatRef::row_major(&all[start * k..(start + rows) * k], rows, k).unwrap();
                pool.install(|| gemm(&mut part, n, a, b, products));
                assert!(
                    part == whole[start * n..(start + rows) * n],
                    "{products:?} rows {start}+{rows}"
                );
            }
        }
    }
}
