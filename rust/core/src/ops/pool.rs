//! Pooling, padding and resizing over the trailing (spatial) dims.
//!
//! Each op is a per-dim table of taps: output position `m` along a dim reads input
//! positions `idx[m][..k]` (−1: none). Max pooling takes the largest tap. Everything else
//! (`avg_pool`, `adaptive_avg_pool`, `pad`, `interpolate`) is linear: a weighted sum of the
//! taps, applied one dim at a time (`Resample`). Its backward is the transposed sum, whose
//! backward is the op again, so every order of gradient is these same kernels.
use std::sync::Arc;

use rayon::prelude::*;

use crate::dtype::{Float, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::node::{Attr, Ctx, Node, Op, SavedTensor};
use crate::storage::{try_alloc, Storage};
use crate::tensor::{with_dtype, Tensor};

/// The taps of one spatial dim of length `len`, giving `out` positions.
#[derive(Clone, Debug)]
pub struct Taps {
    len: usize,
    out: usize,
    k: usize,
    idx: Vec<i64>,
    /// Per tap weight (linear ops); empty for max pooling.
    w: Vec<f64>,
}

impl Taps {
    fn from_rows(len: usize, rows: Vec<Vec<(i64, f64)>>) -> Taps {
        let k = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut idx = Vec::with_capacity(rows.len() * k);
        let mut w = Vec::with_capacity(rows.len() * k);
        for r in &rows {
            for j in 0..k {
                let (i, wt) = r.get(j).copied().unwrap_or((-1, 0.0));
                idx.push(i);
                w.push(wt);
            }
        }
        Taps {
            len,
            out: rows.len(),
            k,
            idx,
            w,
        }
    }

    fn row(&self, m: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let w = &self.w;
        self.idx[m * self.k..(m + 1) * self.k]
            .iter()
            .enumerate()
            .filter(|(_, &i)| i >= 0)
            .map(move |(j, &i)| (i as usize, w.get(m * self.k + j).copied().unwrap_or(1.0)))
    }
}

/// A pooling window's settings along one dim.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub ceil_mode: bool,
}

impl Window {
    /// torch's `pooling_output_shape`.
    fn out_len(&self, op: &'static str, len: usize, shape: &[usize]) -> Result<usize> {
        let Window {
            kernel: k,
            stride: s,
            padding: p,
            dilation: d,
            ceil_mode,
        } = *self;
        if k == 0 || s == 0 || d == 0 {
            return Err(Error::value(
                op,
                format!("kernel_size {k}, stride {s} and dilation {d} must be positive"),
            ));
        }
        // torch's checks: padding at most half the (undilated) kernel; sizes that would
        // overflow can never be allocated.
        let span = d.checked_mul(k - 1).and_then(|v| v.checked_add(1));
        let padded = p.checked_mul(2).and_then(|v| v.checked_add(len));
        let (Some(span), Some(padded)) = (span, padded) else {
            return Err(Error::value(
                op,
                format!(
                    "kernel {k}, dilation {d} and padding {p} overflow (input {})",
                    fmt_shape(shape)
                ),
            ));
        };
        if p > k / 2 {
            return Err(Error::value(
                op,
                format!(
                    "padding {p} should be at most half of the kernel size {k} (input {})",
                    fmt_shape(shape)
                ),
            ));
        }
        if [padded, span, s].iter().any(|&v| v > i64::MAX as usize / 4) {
            return Err(Error::value(
                op,
                format!("input {} with padding {p} is too large", fmt_shape(shape)),
            ));
        }
        let num = padded as i64 - span as i64 + if ceil_mode { s as i64 - 1 } else { 0 };
        let mut out = num.div_euclid(s as i64) + 1;
        if ceil_mode && (out - 1) * s as i64 >= (len + p) as i64 {
            out -= 1;
        }
        if out < 1 {
            return Err(Error::shape(
                op,
                format!(
                    "input of shape {} is too small for kernel {k} (dilation {d}, padding \
                     {p}) along a dim of size {len}: the output would have size {out}",
                    fmt_shape(shape)
                ),
            ));
        }
        Ok(out as usize)
    }
}

/// The trailing `dims` of `shape`, after checking the input has `dims + 1` or `dims + 2`
/// dims.
fn spatial(op: &'static str, shape: &[usize], dims: usize) -> Result<Vec<usize>> {
    if shape.len() != dims + 1 && shape.len() != dims + 2 {
        return Err(Error::shape(
            op,
            format!(
                "expected a {}-D (unbatched) or {}-D (batched) input, got shape {}",
                dims + 1,
                dims + 2,
                fmt_shape(shape)
            ),
        ));
    }
    if shape[shape.len() - dims..].contains(&0) {
        return Err(Error::shape(
            op,
            format!(
                "input of shape {} has an empty spatial dim",
                fmt_shape(shape)
            ),
        ));
    }
    Ok(shape[shape.len() - dims..].to_vec())
}

fn one_name(op: &'static str, dims: usize, names: [&'static str; 2]) -> Result<&'static str> {
    match dims {
        1 | 2 => Ok(names[dims - 1]),
        _ => Err(Error::value(
            op,
            format!("takes 1 or 2 spatial dims, got {dims}"),
        )),
    }
}

// ---- max pooling ---------------------------------------------------------------------------

/// Max pooling; `index` holds, per output, the flat position of its maximum in the input's
/// spatial plane (torch's `return_indices`).
struct MaxPool {
    name: &'static str,
    index: SavedTensor,
    in_shape: Vec<usize>,
    /// The windows of `max_pool` (empty for the adaptive one), for exporters.
    windows: Vec<Window>,
}

impl Op for MaxPool {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        if self.windows.is_empty() {
            return Vec::new();
        }
        let each =
            |f: fn(&Window) -> usize| Attr::dims(&self.windows.iter().map(f).collect::<Vec<_>>());
        vec![
            ("kernel", each(|w| w.kernel)),
            ("stride", each(|w| w.stride)),
            ("padding", each(|w| w.padding)),
            ("dilation", each(|w| w.dilation)),
            (
                "ceil_mode",
                Attr::Int(self.windows.iter().any(|w| w.ceil_mode) as i64),
            ),
        ]
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn rule(&self) -> &'static str {
        "grad_x = g added at each window's maximum (the first one, on ties)"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let index = self.index.get(self.name, "indices")?.clone();
        let ish = index.shape().to_vec();
        let last = ish.len() - 1;
        let mut plane = ish.clone();
        plane[last] = self.in_shape[last..].iter().product();
        let flat = g.reshape(&ish)?;
        flat.scatter_add(last, index, &plane)?
            .reshape(&self.in_shape)
            .map(|n| vec![Some(n)])
    }
}

impl Node {
    /// `max_pool1d`/`max_pool2d` (`windows` has one entry per spatial dim); returns the
    /// pooled values and torch's flat int64 indices.
    pub fn max_pool(&self, windows: &[Window]) -> Result<(Node, Tensor)> {
        let dims = windows.len();
        let op = one_name("max_pool", dims, ["max_pool1d", "max_pool2d"])?;
        let shape = self.shape();
        let sp = spatial(op, &shape, dims)?;
        let maps = windows
            .iter()
            .zip(&sp)
            .map(|(w, &len)| {
                let out = w.out_len(op, len, &shape)?;
                let rows = (0..out)
                    .map(|o| {
                        let start = (o * w.stride) as i64 - w.padding as i64;
                        (0..w.kernel as i64)
                            .map(|j| start + j * w.dilation as i64)
                            .filter(|&i| i >= 0 && i < len as i64)
                            .map(|i| (i, 1.0))
                            .collect()
                    })
                    .collect();
                Ok(Taps::from_rows(len, rows))
            })
            .collect::<Result<Vec<_>>>()?;
        self.max_pool_taps(op, &maps, windows.to_vec())
    }

    /// `adaptive_max_pool1d`/`2d` to the spatial size `out`.
    pub fn adaptive_max_pool(&self, out: &[usize]) -> Result<(Node, Tensor)> {
        let op = one_name(
            "adaptive_max_pool",
            out.len(),
            ["adaptive_max_pool1d", "adaptive_max_pool2d"],
        )?;
        let sp = spatial(op, &self.shape(), out.len())?;
        let maps = adaptive_taps(op, &sp, out)?;
        self.max_pool_taps(op, &maps, Vec::new())
    }

    fn max_pool_taps(
        &self,
        op: &'static str,
        maps: &[Taps],
        windows: Vec<Window>,
    ) -> Result<(Node, Tensor)> {
        let shape = self.shape();
        let dims = maps.len();
        let lead: Vec<usize> = shape[..shape.len() - dims].to_vec();
        let planes: usize = lead.iter().product();
        let (th, tw) = if dims == 1 {
            (Taps::from_rows(1, vec![vec![(0, 1.0)]]), maps[0].clone())
        } else {
            (maps[0].clone(), maps[1].clone())
        };
        let (h, w, oh, ow) = (th.len, tw.len, th.out, tw.out);
        let mut out_shape = lead.clone();
        out_shape.extend(maps.iter().map(|m| m.out));
        let mut idx_shape = lead;
        idx_shape.push(oh * ow);
        let xt = self.tensor().contiguous()?;
        let (vals, idx) = with_dtype!(op, xt.storage(), T, _b => {
            let x = xt.as_slice::<T>().expect("contiguous");
            let mut vals = try_alloc::<T>(op, planes * oh * ow, T::ZERO)?;
            let mut idx = try_alloc::<i64>(op, planes * oh * ow, 0)?;
            // Per output row, its valid input rows; per column tap j, each output column's
            // j-th input column (or None). An output row is then updated tap by tap across
            // all its columns, which has no dependency from one column to the next.
            let rows: Vec<Vec<usize>> = (0..oh).map(|o| th.row(o).map(|r| r.0).collect()).collect();
            let col_taps: Vec<Vec<Option<usize>>> = (0..tw.k)
                .map(|j| (0..ow).map(|o| tw.row(o).nth(j).map(|r| r.0)).collect())
                .collect();
            let first_col: Vec<usize> = (0..ow).map(|o| tw.row(o).next().map_or(0, |r| r.0)).collect();
            let run = |p: usize, (vs, is): (&mut [T], &mut [i64])| {
                let plane = &x[p * h * w..][..h * w];
                let mut at = vec![0usize; ow];
                for (oy, ry) in rows.iter().enumerate() {
                    let best = &mut vs[oy * ow..][..ow];
                    best.fill(T::from_f64(f64::NEG_INFINITY));
                    let y0 = ry.first().copied().unwrap_or(0);
                    for (a, &c) in at.iter_mut().zip(&first_col) {
                        *a = y0 * w + c;
                    }
                    for &iy in ry {
                        let line = &plane[iy * w..][..w];
                        for taps in &col_taps {
                            for ((b, a), &ix) in best.iter_mut().zip(at.iter_mut()).zip(taps) {
                                let Some(ix) = ix else { continue };
                                let v = line[ix];
                                // Written so that no branch depends on the data (random data
                                // would mispredict every other tap): `m` is x86's maxss, which
                                // gives v when either is NaN; a NaN maximum stays.
                                let take = (v > *b) | v.is_nan();
                                *a = std::hint::select_unpredictable(take, iy * w + ix, *a);
                                let m = if *b > v { *b } else { v };
                                *b = if b.is_nan() { *b } else { m };
                            }
                        }
                    }
                    for (i, &a) in is[oy * ow..][..ow].iter_mut().zip(&at) {
                        *i = a as i64;
                    }
                }
            };
            let per = (oh * ow).max(1);
            if planes * h * w >= 1 << 16 {
                vals.par_chunks_mut(per)
                    .zip(idx.par_chunks_mut(per))
                    .enumerate()
                    .for_each(|(p, c)| run(p, c));
            } else {
                vals.chunks_mut(per)
                    .zip(idx.chunks_mut(per))
                    .enumerate()
                    .for_each(|(p, c)| run(p, c));
            }
            Ok::<_, Error>((Tensor::from_vec(vals, &out_shape)?, Tensor::from_vec(idx, &idx_shape)?))
        })?;
        let user_idx = idx.reshape(&out_shape)?;
        let node = Node::from_op(
            vals,
            MaxPool {
                name: op,
                index: SavedTensor::new(idx),
                in_shape: shape.to_vec(),
                windows,
            },
            vec![self.clone()],
        );
        Ok((node, user_idx))
    }
}

// ---- linear maps: average pooling, padding, resizing ----------------------------------------

/// A weighted sum of taps along each trailing dim; `transpose` runs it backward (from the
/// output's shape to the input's).
struct Resample {
    /// (the forward op's name, its transpose's name)
    names: (&'static str, &'static str),
    maps: Arc<Vec<Taps>>,
    transpose: bool,
    /// What goes where a position has no taps (constant padding's value).
    fill: f64,
}

impl Op for Resample {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        // Each dim's taps as they run: (out, k) positions (-1: none) and their weights.
        let (mut taps, mut weights) = (Vec::new(), Vec::new());
        for m in self.maps.iter() {
            let shape = [m.out, m.k];
            taps.extend(Tensor::from_vec(m.idx.clone(), &shape).ok());
            weights.extend(Tensor::from_vec(m.w.clone(), &shape).ok());
        }
        vec![
            ("taps", Attr::Tensors(taps)),
            ("weights", Attr::Tensors(weights)),
            ("transpose", Attr::Int(self.transpose as i64)),
            ("fill", Attr::Float(self.fill)),
        ]
    }
    fn name(&self) -> &'static str {
        if self.transpose {
            self.names.1
        } else {
            self.names.0
        }
    }
    fn rule(&self) -> &'static str {
        if self.transpose {
            "grad_g = the forward op on g (this is its transpose)"
        } else {
            "grad_x = g spread back over each output's taps with the same weights"
        }
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.resample(
            self.names,
            self.maps.clone(),
            !self.transpose,
            0.0,
        )?)])
    }
}

/// One dim of a linear map over `x` viewed as (outer, len, inner).
fn map_dim<T: Float>(
    op: &'static str,
    x: &[T],
    outer: usize,
    inner: usize,
    t: &Taps,
    transpose: bool,
) -> Result<Vec<T>> {
    let (n_in, n_out) = if transpose {
        (t.out, t.len)
    } else {
        (t.len, t.out)
    };
    let mut y = try_alloc::<T>(op, outer * n_out * inner, T::ZERO)?;
    let run = |o: usize, ys: &mut [T]| {
        let xs = &x[o * n_in * inner..][..n_in * inner];
        for m in 0..t.out {
            for (i, wt) in t.row(m) {
                let wt = T::from_f64(wt);
                let (src, dst) = if transpose { (m, i) } else { (i, m) };
                let s = &xs[src * inner..][..inner];
                let d = &mut ys[dst * inner..][..inner];
                for (a, &b) in d.iter_mut().zip(s) {
                    *a += wt * b;
                }
            }
        }
    };
    let per = (n_out * inner).max(1);
    if y.len() >= 1 << 16 {
        y.par_chunks_mut(per)
            .enumerate()
            .for_each(|(o, c)| run(o, c));
    } else {
        y.chunks_mut(per).enumerate().for_each(|(o, c)| run(o, c));
    }
    Ok(y)
}

impl Node {
    /// Applies `maps` to the trailing dims; `fill` goes where a position has no taps in
    /// some dim (constant padding).
    fn resample(
        &self,
        names: (&'static str, &'static str),
        maps: Arc<Vec<Taps>>,
        transpose: bool,
        fill: f64,
    ) -> Result<Node> {
        let op = if transpose { names.1 } else { names.0 };
        let mut shape = self.shape().to_vec();
        let first = shape.len() - maps.len();
        let xt = self.tensor().contiguous()?;
        let t = with_dtype!(op, xt.storage(), T, _b => {
            let mut cur: Vec<T> = xt.as_slice::<T>().expect("contiguous").to_vec();
            for (d, m) in maps.iter().enumerate() {
                let axis = first + d;
                let outer: usize = shape[..axis].iter().product();
                let inner: usize = shape[axis + 1..].iter().product();
                cur = map_dim(op, &cur, outer, inner, m, transpose)?;
                shape[axis] = if transpose { m.len } else { m.out };
            }
            if fill != 0.0 && !transpose {
                fill_holes(&mut cur, &shape[first..], &maps, T::from_f64(fill));
            }
            Tensor::from_vec(cur, &shape)
        })?;
        Ok(Node::from_op(
            t,
            Resample {
                names,
                maps,
                transpose,
                fill,
            },
            vec![self.clone()],
        ))
    }

    /// `avg_pool1d`/`avg_pool2d`, with torch's `count_include_pad` and `divisor_override`.
    pub fn avg_pool(
        &self,
        windows: &[Window],
        count_include_pad: bool,
        divisor_override: Option<i64>,
    ) -> Result<Node> {
        let dims = windows.len();
        let op = one_name("avg_pool", dims, ["avg_pool1d", "avg_pool2d"])?;
        let shape = self.shape();
        let sp = spatial(op, &shape, dims)?;
        if divisor_override == Some(0) {
            return Err(Error::value(op, "divisor_override must not be zero"));
        }
        let mut maps = Vec::with_capacity(dims);
        for (d, (w, &len)) in windows.iter().zip(&sp).enumerate() {
            if w.dilation != 1 {
                return Err(Error::value(op, "takes no dilation"));
            }
            let out = w.out_len(op, len, &shape)?;
            let rows = (0..out)
                .map(|o| {
                    let start = (o * w.stride) as i64 - w.padding as i64;
                    let end = (start + w.kernel as i64).min((len + w.padding) as i64);
                    let pool = end - start;
                    let (lo, hi) = (start.max(0), end.min(len as i64));
                    let weight = match divisor_override {
                        // The whole divisor goes on the first dim's weights.
                        Some(div) => {
                            if d == 0 {
                                1.0 / div as f64
                            } else {
                                1.0
                            }
                        }
                        None if count_include_pad => 1.0 / pool as f64,
                        None => 1.0 / (hi - lo).max(1) as f64,
                    };
                    (lo..hi).map(|i| (i, weight)).collect()
                })
                .collect();
            maps.push(Taps::from_rows(len, rows));
        }
        let back = ["avg_pool1d_backward", "avg_pool2d_backward"][dims - 1];
        self.resample((op, back), Arc::new(maps), false, 0.0)
    }

    /// `adaptive_avg_pool1d`/`2d` to the spatial size `out`.
    pub fn adaptive_avg_pool(&self, out: &[usize]) -> Result<Node> {
        let dims = out.len();
        let op = one_name(
            "adaptive_avg_pool",
            dims,
            ["adaptive_avg_pool1d", "adaptive_avg_pool2d"],
        )?;
        let sp = spatial(op, &self.shape(), dims)?;
        let maps = adaptive_taps(op, &sp, out)?;
        let back = [
            "adaptive_avg_pool1d_backward",
            "adaptive_avg_pool2d_backward",
        ][dims - 1];
        self.resample((op, back), Arc::new(maps), false, 0.0)
    }

    /// `F.pad`: `pads` as torch orders them (last dim first: left, right, then the dim
    /// before ...); `mode` is constant, reflect, replicate or circular.
    pub fn pad(&self, pads: &[i64], mode: &str, value: f64) -> Result<Node> {
        let op = "pad";
        let shape = self.shape();
        if !pads.len().is_multiple_of(2) || pads.len() / 2 > shape.len() {
            return Err(Error::value(
                op,
                format!(
                    "padding of length {} must be even and pad at most the input's {} dims \
                     (shape {})",
                    pads.len(),
                    shape.len(),
                    fmt_shape(&shape)
                ),
            ));
        }
        let nd = pads.len() / 2;
        if mode != "constant" {
            if nd > 3 || shape.len() < nd + 1 {
                return Err(Error::value(
                    op,
                    format!(
                        "{mode} padding pads 1 to 3 trailing dims of an input with a channel \
                         dim, got {nd} pad pairs for shape {}",
                        fmt_shape(&shape)
                    ),
                ));
            }
            if pads.iter().any(|&p| p < 0) {
                return Err(Error::value(
                    op,
                    format!("negative padding {pads:?} needs mode 'constant', not {mode}"),
                ));
            }
        }
        let mut maps = Vec::with_capacity(nd);
        for d in 0..nd {
            let axis = shape.len() - nd + d;
            let len = shape[axis];
            let j = nd - 1 - d;
            let (lo, hi) = (pads[2 * j], pads[2 * j + 1]);
            let out = len as i64 + lo + hi;
            if out < 0 {
                return Err(Error::shape(
                    op,
                    format!(
                        "padding ({lo}, {hi}) of dim {axis} (size {len}) leaves a negative size"
                    ),
                ));
            }
            let n = len as i64;
            let fits = match mode {
                "constant" => true,
                "reflect" => lo < n && hi < n,
                "replicate" => n > 0,
                "circular" => lo <= n && hi <= n,
                _ => {
                    return Err(Error::value(
                        op,
                        format!(
                            "mode must be 'constant', 'reflect', 'replicate' or 'circular', \
                             got {mode:?}"
                        ),
                    ))
                }
            };
            if !fits {
                return Err(Error::shape(
                    op,
                    format!(
                        "{mode} padding ({lo}, {hi}) does not fit dim {axis} of size {len} \
                         (input {})",
                        fmt_shape(&shape)
                    ),
                ));
            }
            let rows = (0..out)
                .map(|o| {
                    let s = o - lo;
                    let src = match mode {
                        "constant" => (0..n).contains(&s).then_some(s),
                        "reflect" => Some(if s < 0 {
                            -s
                        } else if s >= n {
                            2 * (n - 1) - s
                        } else {
                            s
                        }),
                        "replicate" => Some(s.clamp(0, n - 1)),
                        _ => Some(s.rem_euclid(n)),
                    };
                    src.map(|i| (i, 1.0)).into_iter().collect()
                })
                .collect();
            maps.push(Taps::from_rows(len, rows));
        }
        self.resample((op, "pad_backward"), Arc::new(maps), false, value)
    }

    /// `F.interpolate` to `size` along the trailing dims: modes nearest, nearest-exact and
    /// (bi)linear; `scales` are the user's scale factors (torch uses them for the source
    /// positions when given).
    pub fn interpolate(
        &self,
        size: &[usize],
        mode: &str,
        align_corners: bool,
        scales: Option<&[f64]>,
    ) -> Result<Node> {
        let op = "interpolate";
        let shape = self.shape();
        let dims = size.len();
        if dims == 0 || shape.len() != dims + 2 {
            return Err(Error::shape(
                op,
                format!(
                    "an output size of {dims} dims needs a {}-D (N, C, ...) input, got {}",
                    dims + 2,
                    fmt_shape(&shape)
                ),
            ));
        }
        if size.contains(&0) || shape[2..].contains(&0) {
            return Err(Error::shape(
                op,
                format!(
                    "input {} and output size {size:?} must have non-empty spatial dims",
                    fmt_shape(&shape)
                ),
            ));
        }
        let linear = match mode {
            "nearest" | "nearest-exact" => false,
            "linear" | "bilinear" | "trilinear" => {
                let want = ["linear", "bilinear", "trilinear"][dims.min(3) - 1];
                if mode != want {
                    return Err(Error::value(
                        op,
                        format!(
                            "mode {mode:?} needs a {}-D input, got {}",
                            mode_dims(mode) + 2,
                            fmt_shape(&shape)
                        ),
                    ));
                }
                true
            }
            _ => {
                return Err(Error::value(
                    op,
                    format!(
                        "mode must be 'nearest', 'nearest-exact', 'linear', 'bilinear' or \
                         'trilinear', got {mode:?}"
                    ),
                ))
            }
        };
        if scales.is_some_and(|s| s.len() != dims) {
            return Err(Error::value(
                op,
                format!("scale factors {scales:?} need one entry per spatial dim ({dims})"),
            ));
        }
        let f32_math = self.dtype() == crate::DType::F32;
        let maps = (0..dims)
            .map(|d| {
                let (len, out) = (shape[2 + d], size[d]);
                let scale = scales.map(|s| s[d]);
                let rows = (0..out)
                    .map(|o| {
                        if linear {
                            linear_taps(len, out, o, align_corners, scale, f32_math)
                        } else {
                            let exact = mode == "nearest-exact";
                            let i = nearest_index(len, out, o, scale, exact, dims == 2, f32_math);
                            vec![(i, 1.0)]
                        }
                    })
                    .collect();
                Taps::from_rows(len, rows)
            })
            .collect();
        self.resample((op, "interpolate_backward"), Arc::new(maps), false, 0.0)
    }
}

fn mode_dims(mode: &str) -> usize {
    match mode {
        "linear" => 1,
        "bilinear" => 2,
        _ => 3,
    }
}

fn adaptive_taps(op: &'static str, sp: &[usize], out: &[usize]) -> Result<Vec<Taps>> {
    if out.contains(&0) {
        return Err(Error::value(
            op,
            format!("output size {out:?} must be positive"),
        ));
    }
    Ok(sp
        .iter()
        .zip(out)
        .map(|(&len, &out)| {
            let rows = (0..out)
                .map(|o| {
                    let start = o * len / out;
                    let end = ((o + 1) * len).div_ceil(out);
                    let wt = 1.0 / (end - start) as f64;
                    (start..end).map(|i| (i as i64, wt)).collect()
                })
                .collect();
            Taps::from_rows(len, rows)
        })
        .collect())
}

/// torch's nearest source index. Its 2-D kernel uses `nearest_idx`/`nearest_exact_idx`:
/// float32 maths whatever the dtype, and plain nearest copies when the size is kept or
/// doubled. Its 1-D and 3-D kernels compute the position in the data's precision, with no
/// shortcut, and floor it as a float32.
fn nearest_index(
    len: usize,
    out: usize,
    o: usize,
    scale: Option<f64>,
    exact: bool,
    two_d: bool,
    f32_math: bool,
) -> i64 {
    let last = len as i64 - 1;
    if two_d {
        if !exact && out == len {
            return o as i64;
        }
        if !exact && out == 2 * len {
            return (o >> 1) as i64;
        }
        let s: f32 = match scale {
            Some(s) if s > 0.0 => (1.0 / s) as f32,
            _ => len as f32 / out as f32,
        };
        let pos = if exact {
            ((o as f32 + 0.5) * s).floor()
        } else {
            (o as f32 * s).floor()
        };
        return (pos as i64).min(last);
    }
    let r = |v: f64| if f32_math { v as f32 as f64 } else { v };
    let s = match scale {
        Some(s) if s > 0.0 => r(1.0 / s),
        _ => r(r(len as f64) / out as f64),
    };
    let pos = if exact {
        let src = r(r(s * r(o as f64 + 0.5)) - 0.5).max(0.0);
        (r(src + 0.5) as f32).floor()
    } else {
        (r(s * o as f64) as f32).floor()
    };
    (pos as i64).min(last)
}

/// torch's linear source index and weights for output `o`, in the dtype's precision.
fn linear_taps(
    len: usize,
    out: usize,
    o: usize,
    align_corners: bool,
    scale: Option<f64>,
    f32_math: bool,
) -> Vec<(i64, f64)> {
    if len == out {
        return vec![(o as i64, 1.0)];
    }
    let r = |v: f64| if f32_math { v as f32 as f64 } else { v };
    let ratio = if align_corners {
        if out > 1 {
            r(r((len - 1) as f64) / (out - 1) as f64)
        } else {
            0.0
        }
    } else {
        match scale {
            Some(s) if s > 0.0 => r(1.0 / s),
            _ => r(r(len as f64) / out as f64),
        }
    };
    let src = if align_corners {
        r(ratio * o as f64)
    } else {
        r(r(ratio * r(o as f64 + 0.5)) - 0.5).max(0.0)
    };
    let i0 = (src.floor() as i64).min(len as i64 - 1);
    let l1 = r(src - i0 as f64).clamp(0.0, 1.0);
    let i1 = i0 + i64::from(i0 < len as i64 - 1);
    let l0 = r(1.0 - l1);
    if i1 == i0 {
        vec![(i0, l0 + l1)]
    } else {
        vec![(i0, l0), (i1, l1)]
    }
}

/// Sets the positions of a constant pad (no taps in some dim) to `fill`.
fn fill_holes<T: Float>(y: &mut [T], trailing: &[usize], maps: &[Taps], fill: T) {
    let holes: Vec<Vec<bool>> = maps
        .iter()
        .map(|m| (0..m.out).map(|o| m.row(o).next().is_none()).collect())
        .collect();
    let block: usize = trailing.iter().product();
    if block == 0 {
        return;
    }
    for chunk in y.chunks_mut(block) {
        for (j, e) in chunk.iter_mut().enumerate() {
            let mut rest = j;
            let mut hole = false;
            for d in (0..trailing.len()).rev() {
                hole |= holes[d][rest % trailing[d]];
                rest /= trailing[d];
            }
            if hole {
                *e = fill;
            }
        }
    }
}
