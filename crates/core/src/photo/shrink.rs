//! Area-average downscaling fed one source row at a time, so the source image is never held:
//! only the output image and two rows of accumulators (or, for rows arriving out of order, one
//! accumulator per output sample).

use super::PhotoError;

/// Where one source pixel lands along an axis of `n` source and `m <= n` destination pixels:
/// destination pixel `j` gets weight `w0`, `j + 1` gets `w1` (zero when the source pixel lies
/// inside one destination pixel). The weights reaching each destination pixel sum to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    j: u32,
    w0: f32,
    w1: f32,
}

fn tap(i: u32, n: u32, m: u32) -> Tap {
    // Source pixel i covers [i*m/n, (i+1)*m/n) in destination units; integers keep the
    // boundary exact.
    let (n, m) = (u64::from(n), u64::from(m));
    let start = u64::from(i) * m;
    let end = start + m;
    let j = start / n;
    let edge = (j + 1) * n;
    let unit = 1.0 / n as f64;
    let (w0, w1) = if end <= edge {
        (m as f64 * unit, 0.0)
    } else {
        ((edge - start) as f64 * unit, (end - edge) as f64 * unit)
    };
    Tap {
        // j < m <= u32::MAX because start < n * m.
        j: j as u32,
        w0: w0 as f32,
        w1: w1 as f32,
    }
}

/// Scales an RGB8 image down to `dst` while its rows are read.
pub(crate) struct Shrink {
    src: (u32, u32),
    dst: (u32, u32),
    cols: Vec<Tap>,
    /// Rows arrive top to bottom: destination rows are written out as soon as they are complete
    /// and `acc` holds two of them. Otherwise (interlaced PNG) `acc` holds every row.
    in_order: bool,
    /// Accumulated destination rows `first..`, RGB.
    acc: Vec<f32>,
    first: u32,
    row: Vec<f32>,
    out: Vec<u8>,
}

impl Shrink {
    /// Bytes a `Shrink` holds beyond its output image.
    pub(crate) fn working_bytes(src_w: u32, dst: (u32, u32), in_order: bool) -> u64 {
        let (w, h) = (u64::from(dst.0), u64::from(dst.1));
        let rows = if in_order { 2 } else { h };
        (rows + 1) * w * 3 * 4 + u64::from(src_w) * 12
    }

    pub(crate) fn new(
        src: (u32, u32),
        dst: (u32, u32),
        in_order: bool,
    ) -> Result<Self, PhotoError> {
        let dst = (dst.0.clamp(1, src.0.max(1)), dst.1.clamp(1, src.1.max(1)));
        let stride = dst.0 as usize * 3;
        let rows = if in_order { 2 } else { dst.1 as usize };
        Ok(Self {
            src,
            dst,
            cols: (0..src.0).map(|x| tap(x, src.0, dst.0)).collect(),
            in_order,
            acc: zeroed(stride * rows)?,
            first: 0,
            row: zeroed(stride)?,
            out: zeroed(stride * dst.1 as usize)?,
        })
    }

    /// Adds source row `y` whose samples are at columns `x0, x0 + dx, ...` (every column
    /// unless interlaced), RGB.
    pub(crate) fn add(&mut self, y: u32, x0: u32, dx: u32, rgb: &[u8]) {
        if y >= self.src.1 {
            return;
        }
        self.row.fill(0.0);
        let mut x = x0 as usize;
        for px in rgb.chunks_exact(3) {
            let Some(t) = self.cols.get(x) else { break };
            let o = t.j as usize * 3;
            for (c, &v) in px.iter().enumerate() {
                let v = f32::from(v);
                self.row[o + c] += t.w0 * v;
                if t.w1 > 0.0 {
                    self.row[o + 3 + c] += t.w1 * v;
                }
            }
            x += dx as usize;
        }
        let t = tap(y, self.src.1, self.dst.1);
        if self.in_order {
            while t.j > self.first {
                self.flush_first();
            }
        }
        let stride = self.row.len();
        let Some(r) = t.j.checked_sub(self.first).map(|r| r as usize * stride) else {
            return; // Out of order where order was promised: cannot happen with the callers.
        };
        for (a, &v) in self.acc[r..r + stride].iter_mut().zip(&self.row) {
            *a += t.w0 * v;
        }
        if t.w1 > 0.0 {
            for (a, &v) in self.acc[r + stride..r + 2 * stride]
                .iter_mut()
                .zip(&self.row)
            {
                *a += t.w1 * v;
            }
        }
    }

    /// Writes out the first accumulated row and moves the window down by one.
    fn flush_first(&mut self) {
        let stride = self.row.len();
        let at = self.first as usize * stride;
        if let Some(dst) = self.out.get_mut(at..at + stride) {
            to_u8(&self.acc[..stride], dst);
        }
        self.acc.copy_within(stride.., 0);
        let len = self.acc.len();
        self.acc[len - stride..].fill(0.0);
        self.first += 1;
    }

    /// The scaled image: RGB8, its width and height.
    pub(crate) fn finish(mut self) -> (Vec<u8>, u32, u32) {
        let at = self.first as usize * self.row.len();
        let rest = self.out.len().saturating_sub(at);
        if let Some(dst) = self.out.get_mut(at..) {
            to_u8(&self.acc[..rest.min(self.acc.len())], dst);
        }
        (self.out, self.dst.0, self.dst.1)
    }
}

fn to_u8(acc: &[f32], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(acc) {
        // Float-to-int `as` saturates, so rounding error cannot wrap.
        *o = (v + 0.5) as u8;
    }
}

/// A zeroed buffer, or an error instead of an abort when the allocation fails.
pub(crate) fn zeroed<T: Default + Clone>(len: usize) -> Result<Vec<T>, PhotoError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        PhotoError::TooLarge(format!(
            "{} MB could not be allocated",
            (len * std::mem::size_of::<T>()) >> 20
        ))
    })?;
    v.resize(len, T::default());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_cover_each_destination_pixel_exactly_once() {
        for (n, m) in [(10, 10), (10, 3), (7, 2), (6600, 2569), (5, 1)] {
            let mut sums = vec![0.0f64; m as usize];
            for i in 0..n {
                let t = tap(i, n, m);
                sums[t.j as usize] += f64::from(t.w0);
                if t.w1 > 0.0 {
                    sums[t.j as usize + 1] += f64::from(t.w1);
                }
            }
            assert!(
                sums.iter().all(|s| (s - 1.0).abs() < 1e-4),
                "{n}->{m}: {sums:?}"
            );
        }
    }

    fn image(w: u32, h: u32) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    (x * 17 % 256) as u8,
                    (y * 29 % 256) as u8,
                    ((x + y) % 7 * 30) as u8,
                ]
            })
            .collect()
    }

    #[test]
    fn same_size_is_a_copy_and_flat_colour_stays_flat() {
        let img = image(13, 9);
        let mut s = Shrink::new((13, 9), (13, 9), true).unwrap();
        for (y, row) in img.chunks_exact(13 * 3).enumerate() {
            s.add(y as u32, 0, 1, row);
        }
        assert_eq!(s.finish(), (img, 13, 9));

        let grey = vec![77u8; 101 * 3];
        let mut s = Shrink::new((101, 57), (23, 11), true).unwrap();
        for y in 0..57 {
            s.add(y, 0, 1, &grey);
        }
        let (out, w, h) = s.finish();
        assert_eq!((w, h), (23, 11));
        assert!(out.iter().all(|&v| v == 77));
    }

    #[test]
    fn halving_averages_two_by_two_blocks_in_any_row_order() {
        let img = image(8, 6);
        let expected: Vec<u8> = (0..3 * 4)
            .flat_map(|i| {
                let (x, y) = (i % 4 * 2, i / 4 * 2);
                let img = &img;
                (0..3).map(move |c| {
                    let at = |x: u32, y: u32| f32::from(img[((y * 8 + x) * 3 + c) as usize]);
                    let sum = at(x, y) + at(x + 1, y) + at(x, y + 1) + at(x + 1, y + 1);
                    (sum / 4.0 + 0.5) as u8
                })
            })
            .collect();
        let mut s = Shrink::new((8, 6), (4, 3), true).unwrap();
        for (y, row) in img.chunks_exact(8 * 3).enumerate() {
            s.add(y as u32, 0, 1, row);
        }
        assert_eq!(s.finish().0, expected);
        // The same pixels as even columns, then odd columns, bottom row first.
        let mut s = Shrink::new((8, 6), (4, 3), false).unwrap();
        for y in (0..6u32).rev() {
            let row = &img[(y * 24) as usize..][..24];
            for x0 in [0, 1] {
                let samples: Vec<u8> = row
                    .chunks_exact(3)
                    .skip(x0)
                    .step_by(2)
                    .flatten()
                    .copied()
                    .collect();
                s.add(y, x0 as u32, 2, &samples);
            }
        }
        assert_eq!(s.finish().0, expected);
    }
}
