//! Convolutions over 1 or 2 spatial dims: `conv`, its transpose (`conv_input`, the input's
//! gradient) and `conv_weight` (the weight's gradient), plus `unfold`/`fold` (im2col and
//! col2im as user ops). The kernels are im2col + gemm. The three conv ops' backward rules
//! are written with each other, so they close under differentiation (gradients of
//! gradients need nothing more).
use rayon::prelude::*;

use crate::dtype::{DType, Float, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::node::{Ctx, Node, Op};
use crate::storage::{try_alloc, Element, Storage};
use crate::tensor::{with_dtype, Tensor};

/// A convolution's settings. One-dim ops keep a unit H (stride 1, no padding), so every
/// kernel sees (N, C, H, W).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// The spatial dims the user's tensors have: 1 or 2.
    pub dims: usize,
    pub stride: [usize; 2],
    pub pad_lo: [usize; 2],
    pub pad_hi: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvSpec {
    /// Settings from per-dim lists of length `dims` (1 or 2).
    pub fn new(
        op: &'static str,
        stride: &[usize],
        pad_lo: &[usize],
        pad_hi: &[usize],
        dilation: &[usize],
        groups: usize,
    ) -> Result<ConvSpec> {
        let dims = stride.len();
        if !(1..=2).contains(&dims) || [pad_lo.len(), pad_hi.len(), dilation.len()] != [dims; 3] {
            return Err(Error::value(
                op,
                "stride, padding and dilation need one entry per spatial dim (1 or 2)",
            ));
        }
        if stride.contains(&0) || dilation.contains(&0) || groups == 0 {
            return Err(Error::value(
                op,
                format!(
                    "stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"
                ),
            ));
        }
        let two = |v: &[usize], unit: usize| {
            if dims == 1 {
                [unit, v[0]]
            } else {
                [v[0], v[1]]
            }
        };
        Ok(ConvSpec {
            dims,
            stride: two(stride, 1),
            pad_lo: two(pad_lo, 0),
            pad_hi: two(pad_hi, 0),
            dilation: two(dilation, 1),
            groups,
        })
    }

    fn conv_name(&self) -> &'static str {
        ["conv1d", "conv2d"][self.dims - 1]
    }
    fn transpose_name(&self) -> &'static str {
        ["conv_transpose1d", "conv_transpose2d"][self.dims - 1]
    }
    fn weight_name(&self) -> &'static str {
        ["conv1d_weight", "conv2d_weight"][self.dims - 1]
    }

    /// The output length along spatial dim `d` (0 = H) for an input of `len` and a kernel
    /// of `k`, or None when the dilated kernel is larger than the padded input.
    fn out_len(&self, d: usize, len: usize, k: usize) -> Option<usize> {
        let padded = len + self.pad_lo[d] + self.pad_hi[d];
        let span = self.dilation[d] * k.checked_sub(1)? + 1;
        (padded >= span).then(|| (padded - span) / self.stride[d] + 1)
    }
}

/// Every size of one convolution: input (n, c, h, w), weight (o, c/g, kh, kw), output
/// (n, o, oh, ow).
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c: usize,
    o: usize,
    g: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
}

impl Geom {
    fn l(&self) -> usize {
        self.oh * self.ow
    }
    fn kk(&self) -> usize {
        self.kh * self.kw
    }
    /// Rows of one group's im2col matrix.
    fn kg(&self) -> usize {
        self.c / self.g * self.kk()
    }
    fn og(&self) -> usize {
        self.o / self.g
    }
}

/// A user tensor's shape seen as (n, c, h, w): `dims` spatial dims, batched or not.
fn as_nchw(
    op: &'static str,
    what: &str,
    shape: &[usize],
    dims: usize,
) -> Result<(bool, [usize; 4])> {
    let batched = shape.len() == dims + 2;
    if !batched && shape.len() != dims + 1 {
        return Err(Error::shape(
            op,
            format!(
                "expected a {}-D (unbatched) or {}-D (batched) {what}, got shape {}",
                dims + 1,
                dims + 2,
                fmt_shape(shape)
            ),
        ));
    }
    let lead = if batched { shape[0] } else { 1 };
    let rest = &shape[usize::from(batched)..];
    let (h, w) = if dims == 1 {
        (1, rest[1])
    } else {
        (rest[1], rest[2])
    };
    Ok((batched, [lead, rest[0], h, w]))
}

/// The user-facing shape of (n, c, h, w) for `dims` spatial dims.
fn user_shape(batched: bool, dims: usize, s: [usize; 4]) -> Vec<usize> {
    let mut v = Vec::with_capacity(4);
    if batched {
        v.push(s[0]);
    }
    v.push(s[1]);
    if dims == 2 {
        v.push(s[2]);
    }
    v.push(s[3]);
    v
}

/// Checks the weight against the input and returns the geometry of `conv(x, w)`.
fn conv_geom(
    op: &'static str,
    spec: &ConvSpec,
    x: &[usize],
    w: &[usize],
    x_what: &str,
) -> Result<(bool, Geom)> {
    if w.len() != spec.dims + 2 {
        return Err(Error::shape(
            op,
            format!(
                "weight must be {}-D, got shape {}",
                spec.dims + 2,
                fmt_shape(w)
            ),
        ));
    }
    let (batched, [n, c, h, wd]) = as_nchw(op, x_what, x, spec.dims)?;
    let (kh, kw) = if spec.dims == 1 {
        (1, w[2])
    } else {
        (w[2], w[3])
    };
    let g = spec.groups;
    if !w[0].is_multiple_of(g) {
        return Err(Error::shape(
            op,
            format!(
                "weight of shape {}: {} output channels are not divisible by groups={g}",
                fmt_shape(w),
                w[0]
            ),
        ));
    }
    if w[1] * g != c {
        return Err(Error::shape(
            op,
            format!(
                "groups={g} and weight of shape {} expect {} input channels, but the {x_what} of \
                 shape {} has {c}",
                fmt_shape(w),
                w[1] * g,
                fmt_shape(x)
            ),
        ));
    }
    let oh = spec.out_len(0, h, kh);
    let ow = spec.out_len(1, wd, kw);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        let padded: Vec<usize> = (0..2)
            .map(|d| [h, wd][d] + spec.pad_lo[d] + spec.pad_hi[d])
            .skip(2 - spec.dims)
            .collect();
        let kernel: Vec<usize> = (0..2)
            .map(|d| spec.dilation[d] * ([kh, kw][d].max(1) - 1) + 1)
            .skip(2 - spec.dims)
            .collect();
        return Err(Error::shape(
            op,
            format!(
                "the padded {x_what} size per channel {} is smaller than the (dilated) kernel \
                 size {} (input {}, weight {})",
                fmt_shape(&padded),
                fmt_shape(&kernel),
                fmt_shape(x),
                fmt_shape(w)
            ),
        ));
    };
    Ok((
        batched,
        Geom {
            n,
            c,
            o: w[0],
            g,
            h,
            w: wd,
            oh,
            ow,
            kh,
            kw,
            sh: spec.stride[0],
            sw: spec.stride[1],
            ph: spec.pad_lo[0],
            pw: spec.pad_lo[1],
            dh: spec.dilation[0],
            dw: spec.dilation[1],
        },
    ))
}

/// Casts the operands to one float dtype, or says which is not float.
fn common_float(op: &'static str, nodes: &[&Node]) -> Result<DType> {
    let mut dt = nodes[0].dtype();
    for n in &nodes[1..] {
        dt = dt.promote(n.dtype());
    }
    for n in nodes {
        if !n.dtype().is_float() {
            return Err(Error::type_(
                op,
                format!("needs float tensors, got {}", n.dtype()),
            ));
        }
    }
    Ok(dt)
}

// ---- the ops --------------------------------------------------------------------------

/// `conv(x, w) + b`; parents `[x, w]` or `[x, w, b]`.
struct Conv {
    spec: ConvSpec,
}

impl Op for Conv {
    fn name(&self) -> &'static str {
        self.spec.conv_name()
    }
    fn rule(&self) -> &'static str {
        "grad_x = conv_transpose(g, w), grad_w = g correlated with x (conv_weight), grad_b = g \
         summed over batch and positions"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let (x, w) = (c.parent(0), c.parent(1));
        let mut grads = vec![
            c.grad_for(0, || g.conv_input(w, &self.spec, &x.shape()))?,
            c.grad_for(1, || x.conv_weight(g, &self.spec, &w.shape()))?,
        ];
        if c.parents.len() == 3 {
            grads.push(c.grad_for(2, || {
                let nd = g.ndim() as isize;
                let dims: Vec<isize> = (0..nd)
                    .filter(|&d| d != nd - 1 - self.spec.dims as isize)
                    .collect();
                g.sum(Some(&dims), false)
            })?);
        }
        Ok(grads)
    }
}

/// The gradient of `conv` for its input, which is the transposed convolution of `gy`;
/// parents `[gy, w]`.
struct ConvInput {
    spec: ConvSpec,
}

impl Op for ConvInput {
    fn name(&self) -> &'static str {
        self.spec.transpose_name()
    }
    fn rule(&self) -> &'static str {
        "grad_y = conv(g, w), grad_w = y correlated with g (conv_weight)"
    }
    // <h, conv_input(y, w)> = <conv(h, w), y>: the adjoint pairing gives both gradients.
    fn backward(&self, c: &Ctx, h: &Node) -> Result<Vec<Option<Node>>> {
        let (y, w) = (c.parent(0), c.parent(1));
        Ok(vec![
            c.grad_for(0, || h.conv(w, None, &self.spec))?,
            c.grad_for(1, || h.conv_weight(y, &self.spec, &w.shape()))?,
        ])
    }
}

/// The gradient of `conv` for its weight: `gy` correlated with `x`; parents `[x, gy]`.
struct ConvWeight {
    spec: ConvSpec,
}

impl Op for ConvWeight {
    fn name(&self) -> &'static str {
        self.spec.weight_name()
    }
    fn rule(&self) -> &'static str {
        "grad_x = conv_transpose(gy, g), grad_gy = conv(x, g)"
    }
    // <h, conv_weight(x, gy)> = <conv(x, h), gy>.
    fn backward(&self, c: &Ctx, h: &Node) -> Result<Vec<Option<Node>>> {
        let (x, gy) = (c.parent(0), c.parent(1));
        Ok(vec![
            c.grad_for(0, || gy.conv_input(h, &self.spec, &x.shape()))?,
            c.grad_for(1, || x.conv(h, None, &self.spec))?,
        ])
    }
}

impl Node {
    /// `conv1d`/`conv2d` (cross-correlation, as torch): input (N, C, [H,] W) or unbatched
    /// (C, [H,] W), weight (O, C/groups, [kH,] kW), bias (O,).
    pub fn conv(&self, w: &Node, b: Option<&Node>, spec: &ConvSpec) -> Result<Node> {
        let op = spec.conv_name();
        let mut all = vec![self, w];
        all.extend(b);
        let dt = common_float(op, &all)?;
        let (xs, ws) = (self.shape(), w.shape());
        let (batched, geo) = conv_geom(op, spec, &xs, &ws, "input")?;
        if let Some(b) = b {
            if b.shape().as_slice() != [geo.o] {
                return Err(Error::shape(
                    op,
                    format!(
                        "bias must have shape ({},) for weight of shape {}, got {}",
                        geo.o,
                        fmt_shape(&ws),
                        fmt_shape(&b.shape())
                    ),
                ));
            }
        }
        let x = self.to_dtype(dt)?;
        let w = w.to_dtype(dt)?;
        let b = b.map(|b| b.to_dtype(dt)).transpose()?;
        let out_shape = user_shape(batched, spec.dims, [geo.n, geo.o, geo.oh, geo.ow]);
        let bt = b.as_ref().map(|b| b.tensor());
        let t = run(
            op,
            Kernel::Forward,
            &x.tensor(),
            &w.tensor(),
            bt.as_ref(),
            &geo,
            &out_shape,
        )?;
        let mut parents = vec![x, w];
        parents.extend(b);
        Ok(Node::from_op(t, Conv { spec: spec.clone() }, parents))
    }

    /// The transposed convolution of `self` (shaped as `conv`'s output) with `w`, giving a
    /// tensor of shape `x_shape` (the shape of the `conv` input it is the gradient of).
    pub fn conv_input(&self, w: &Node, spec: &ConvSpec, x_shape: &[usize]) -> Result<Node> {
        let op = spec.transpose_name();
        let dt = common_float(op, &[self, w])?;
        let ws = w.shape();
        let (batched, geo) = conv_geom(op, spec, x_shape, &ws, "output")?;
        let want = user_shape(batched, spec.dims, [geo.n, geo.o, geo.oh, geo.ow]);
        fits(op, "input", &self.shape(), &want, &ws, x_shape)?;
        let gy = self.to_dtype(dt)?;
        let w = w.to_dtype(dt)?;
        let t = run(
            op,
            Kernel::Input,
            &gy.tensor(),
            &w.tensor(),
            None,
            &geo,
            x_shape,
        )?;
        Ok(Node::from_op(
            t,
            ConvInput { spec: spec.clone() },
            vec![gy, w],
        ))
    }

    /// The gradient of `conv(self, w)` for a weight of shape `w_shape`, given the output's
    /// gradient `gy`.
    pub fn conv_weight(&self, gy: &Node, spec: &ConvSpec, w_shape: &[usize]) -> Result<Node> {
        let op = spec.weight_name();
        let dt = common_float(op, &[self, gy])?;
        let xs = self.shape();
        let (batched, geo) = conv_geom(op, spec, &xs, w_shape, "input")?;
        let want = user_shape(batched, spec.dims, [geo.n, geo.o, geo.oh, geo.ow]);
        fits(op, "output gradient", &gy.shape(), &want, w_shape, &xs)?;
        let x = self.to_dtype(dt)?;
        let gy = gy.to_dtype(dt)?;
        let t = run(
            op,
            Kernel::Weight,
            &x.tensor(),
            &gy.tensor(),
            None,
            &geo,
            w_shape,
        )?;
        Ok(Node::from_op(
            t,
            ConvWeight { spec: spec.clone() },
            vec![x, gy],
        ))
    }
}

/// Checks that an operand shaped as `conv`'s output has the shape the geometry gives.
fn fits(
    op: &'static str,
    what: &str,
    got: &[usize],
    want: &[usize],
    w: &[usize],
    x: &[usize],
) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(Error::shape(
        op,
        format!(
            "{what} of shape {} does not fit weight {} and image {}: expected shape {}",
            fmt_shape(got),
            fmt_shape(w),
            fmt_shape(x),
            fmt_shape(want)
        ),
    ))
}

enum Kernel {
    Forward,
    Input,
    Weight,
}

/// Runs one conv kernel on contiguous copies of its operands.
fn run(
    op: &'static str,
    kernel: Kernel,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    geo: &Geom,
    shape: &[usize],
) -> Result<Tensor> {
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    let bias = bias.map(Tensor::contiguous).transpose()?;
    with_dtype!(op, a.storage(), T, _ab => {
        let (x, y) = (slice::<T>(&a), slice::<T>(&b));
        let out = match kernel {
            Kernel::Forward => conv_forward(op, x, y, bias.as_ref().map(slice::<T>), geo)?,
            Kernel::Input => conv_input_kernel(op, x, y, geo)?,
            Kernel::Weight => conv_weight_kernel(op, x, y, geo)?,
        };
        Tensor::from_vec(out, shape)
    })
}

// ---- unfold / fold ------------------------------------------------------------------------

/// `F.unfold` / `F.fold`: sliding blocks as columns, and columns summed back into an image.
#[derive(Clone, Debug)]
struct Patches {
    kernel: [usize; 2],
    spec: ConvSpec,
    /// The image's (H, W): the input of `unfold`, the output of `fold`.
    image: [usize; 2],
}

impl Patches {
    /// The geometry of im2col on (n, c, h, w) images.
    fn geom(&self, op: &'static str, n: usize, c: usize) -> Result<Geom> {
        let s = &self.spec;
        let [h, w] = self.image;
        let [kh, kw] = self.kernel;
        match (s.out_len(0, h, kh), s.out_len(1, w, kw)) {
            (Some(oh), Some(ow)) => Ok(Geom {
                n,
                c,
                o: 0,
                g: 1,
                h,
                w,
                oh,
                ow,
                kh,
                kw,
                sh: s.stride[0],
                sw: s.stride[1],
                ph: s.pad_lo[0],
                pw: s.pad_lo[1],
                dh: s.dilation[0],
                dw: s.dilation[1],
            }),
            _ => Err(Error::shape(
                op,
                format!(
                    "kernel {} (dilation {:?}) is larger than the padded image {} (padding {:?})",
                    fmt_shape(&self.kernel),
                    s.dilation,
                    fmt_shape(&self.image),
                    s.pad_lo
                ),
            )),
        }
    }
}

/// `unfold`, or with `fold` set its transpose `fold`: each is the other's backward.
struct PatchOp {
    p: Patches,
    fold: bool,
}

impl Op for PatchOp {
    fn name(&self) -> &'static str {
        if self.fold {
            "fold"
        } else {
            "unfold"
        }
    }
    fn rule(&self) -> &'static str {
        if self.fold {
            "grad_cols = unfold(g)"
        } else {
            "grad_x = fold(g): each block's gradient summed back where the block came from"
        }
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let grad = if self.fold {
            g.unfold_patches(&self.p)?
        } else {
            g.fold_patches(&self.p)?
        };
        Ok(vec![Some(grad)])
    }
}

impl Node {
    /// `F.unfold`: (N, C, H, W) or (C, H, W) → (N, C·kH·kW, L), L the block count.
    pub fn unfold(&self, kernel: [usize; 2], spec: &ConvSpec) -> Result<Node> {
        let s = self.shape();
        if s.len() != 3 && s.len() != 4 {
            return Err(Error::shape(
                "unfold",
                format!(
                    "expected a 3-D (unbatched) or 4-D (batched) input, got shape {}",
                    fmt_shape(&s)
                ),
            ));
        }
        let image = [s[s.len() - 2], s[s.len() - 1]];
        self.unfold_patches(&Patches {
            kernel,
            spec: spec.clone(),
            image,
        })
    }

    /// `F.fold`: (N, C·kH·kW, L) or (C·kH·kW, L) → (N, C, H, W) with `output` = (H, W).
    pub fn fold(&self, output: [usize; 2], kernel: [usize; 2], spec: &ConvSpec) -> Result<Node> {
        self.fold_patches(&Patches {
            kernel,
            spec: spec.clone(),
            image: output,
        })
    }

    fn unfold_patches(&self, p: &Patches) -> Result<Node> {
        let op = "unfold";
        let s = self.shape();
        let batched = s.len() == 4;
        let (n, c) = if batched { (s[0], s[1]) } else { (1, s[0]) };
        let geo = p.geom(op, n, c)?;
        let (kk, l) = (geo.kk(), geo.l());
        let mut out_shape = vec![c * kk, l];
        if batched {
            out_shape.insert(0, n);
        }
        let xt = self.tensor().contiguous()?;
        let t = with_dtype!(op, xt.storage(), T, _b => {
            let x = slice::<T>(&xt);
            let mut cols = try_alloc::<T>(op, n * c * kk * l, T::ZERO)?;
            let (plane, block) = (c * geo.h * geo.w, c * kk * l);
            for i in 0..n {
                im2col(&x[i * plane..][..plane], &geo, &mut cols[i * block..][..block], l, 0);
            }
            Tensor::from_vec(cols, &out_shape)
        })?;
        Ok(Node::from_op(
            t,
            PatchOp {
                p: p.clone(),
                fold: false,
            },
            vec![self.clone()],
        ))
    }

    fn fold_patches(&self, p: &Patches) -> Result<Node> {
        let op = "fold";
        let s = self.shape();
        if s.len() != 2 && s.len() != 3 {
            return Err(Error::shape(
                op,
                format!(
                    "expected a 2-D (unbatched) or 3-D (batched) input, got shape {}",
                    fmt_shape(&s)
                ),
            ));
        }
        let batched = s.len() == 3;
        let (n, rows, blocks) = if batched {
            (s[0], s[1], s[2])
        } else {
            (1, s[0], s[1])
        };
        let kk = p.kernel[0] * p.kernel[1];
        if kk == 0 || rows % kk != 0 {
            return Err(Error::shape(
                op,
                format!(
                    "input of shape {}: dim {} ({rows}) must be divisible by the kernel's \
                     size {kk} ({})",
                    fmt_shape(&s),
                    usize::from(batched),
                    fmt_shape(&p.kernel)
                ),
            ));
        }
        let c = rows / kk;
        let geo = p.geom(op, n, c)?;
        if geo.l() != blocks {
            return Err(Error::shape(
                op,
                format!(
                    "input of shape {} has {blocks} blocks, but output size {} with kernel {} \
                     gives {} ({} x {})",
                    fmt_shape(&s),
                    fmt_shape(&p.image),
                    fmt_shape(&p.kernel),
                    geo.l(),
                    geo.oh,
                    geo.ow
                ),
            ));
        }
        let mut out_shape = vec![c, geo.h, geo.w];
        if batched {
            out_shape.insert(0, n);
        }
        let ct = self.tensor().contiguous()?;
        let t = with_dtype!(op, ct.storage(), T, _b => {
            let cols = slice::<T>(&ct);
            let plane = c * geo.h * geo.w;
            let mut x = try_alloc::<T>(op, n * plane, T::ZERO)?;
            let block = rows * blocks;
            for i in 0..n {
                col2im(&cols[i * block..][..block], &geo, &mut x[i * plane..][..plane], blocks, 0);
            }
            Tensor::from_vec(x, &out_shape)
        })?;
        Ok(Node::from_op(
            t,
            PatchOp {
                p: p.clone(),
                fold: true,
            },
            vec![self.clone()],
        ))
    }
}

// ---- kernels --------------------------------------------------------------------------------

fn slice<T: Element>(t: &Tensor) -> &[T] {
    t.as_slice::<T>()
        .expect("a contiguous tensor of the dispatched dtype")
}

/// Columns (elements) of im2col matrices held at once: bounds the scratch memory.
const COLS_BUDGET: usize = 1 << 21;

/// The buffers of one conv kernel: im2col columns for `chunk` samples at a time (they
/// share one product with the weight), and room to permute (n, o, l) rows to (o, n·l).
struct Scratch<T> {
    chunk: usize,
    cols: Vec<T>,
    perm: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(op: &'static str, g: &Geom) -> Result<Scratch<T>> {
        let per_sample = (g.c * g.kk() * g.l()).max(1);
        let chunk = (COLS_BUDGET / per_sample).clamp(1, g.n.max(1));
        let cols = try_alloc::<T>(op, g.c * g.kk() * chunk * g.l(), T::ZERO)?;
        let perm = if chunk > 1 {
            try_alloc::<T>(op, g.o * chunk * g.l(), T::ZERO)?
        } else {
            Vec::new()
        };
        Ok(Scratch { chunk, cols, perm })
    }
}

/// Writes sample `x` (c, h, w) as im2col rows: row (ci, ki, kj) holds the input under that
/// kernel tap at every output position, at `cols[row * rs + off ..][..oh * ow]`.
fn im2col<T: Float>(x: &[T], g: &Geom, cols: &mut [T], rs: usize, off: usize) {
    let (h, w, ow) = (g.h as isize, g.w as isize, g.ow);
    for ci in 0..g.c {
        let plane = &x[ci * g.h * g.w..][..g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (ci * g.kh + ki) * g.kw + kj;
                let dst = &mut cols[row * rs + off..][..g.l()];
                let x0 = (kj * g.dw) as isize - g.pw as isize;
                for oy in 0..g.oh {
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    let d = &mut dst[oy * ow..][..ow];
                    if iy < 0 || iy >= h {
                        d.fill(T::ZERO);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    if g.sw == 1 {
                        let lo = (-x0).clamp(0, ow as isize) as usize;
                        let hi = (w - x0).clamp(lo as isize, ow as isize) as usize;
                        d[..lo].fill(T::ZERO);
                        let s0 = (lo as isize + x0) as usize;
                        d[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                        d[hi..].fill(T::ZERO);
                    } else {
                        for (ox, e) in d.iter_mut().enumerate() {
                            let ix = (ox * g.sw) as isize + x0;
                            *e = if ix >= 0 && ix < w {
                                src[ix as usize]
                            } else {
                                T::ZERO
                            };
                        }
                    }
                }
            }
        }
    }
}

/// The transpose of `im2col`: adds each column entry back into sample `x` (c, h, w).
fn col2im<T: Float>(cols: &[T], g: &Geom, x: &mut [T], rs: usize, off: usize) {
    let (h, w, ow) = (g.h as isize, g.w as isize, g.ow);
    for ci in 0..g.c {
        let plane = &mut x[ci * g.h * g.w..][..g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (ci * g.kh + ki) * g.kw + kj;
                let src = &cols[row * rs + off..][..g.l()];
                let x0 = (kj * g.dw) as isize - g.pw as isize;
                for oy in 0..g.oh {
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    let s = &src[oy * ow..][..ow];
                    let dst = &mut plane[iy as usize * g.w..][..g.w];
                    if g.sw == 1 {
                        let lo = (-x0).clamp(0, ow as isize) as usize;
                        let hi = (w - x0).clamp(lo as isize, ow as isize) as usize;
                        let d0 = (lo as isize + x0) as usize;
                        for (d, &v) in dst[d0..d0 + hi - lo].iter_mut().zip(&s[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (ox, &v) in s.iter().enumerate() {
                            let ix = (ox * g.sw) as isize + x0;
                            if ix >= 0 && ix < w {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Fills im2col columns for samples `n0..n0 + nc` (one block of `nc · l` columns), the
/// channels split over threads when the block is large.
fn fill_cols<T: Float>(x: &[T], g: &Geom, n0: usize, nc: usize, cols: &mut [T]) {
    let (l, kk, plane) = (g.l(), g.kk(), g.c * g.h * g.w);
    let width = nc * l;
    let one = Geom { c: 1, ..*g };
    let run = |ci: usize, rows: &mut [T]| {
        for i in 0..nc {
            let xs = &x[(n0 + i) * plane + ci * g.h * g.w..][..g.h * g.w];
            im2col(xs, &one, rows, width, i * l);
        }
    };
    if cols.len() >= 1 << 15 && g.c > 1 {
        cols.par_chunks_mut(kk * width)
            .enumerate()
            .for_each(|(ci, rows)| run(ci, rows));
    } else {
        for (ci, rows) in cols.chunks_mut(kk * width).enumerate() {
            run(ci, rows);
        }
    }
}

/// `dst (m×n) [+]= a (m×k) · b (k×n)`; each operand given as (pointer, row stride, column
/// stride).
///
/// # Safety
/// The pointers and strides must address m×k, k×n and m×n elements inside live buffers,
/// and `dst` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut T, isize),
    accumulate: bool,
    a: (*const T, isize, isize),
    b: (*const T, isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *dst.0.offset(i as isize * dst.1 + j as isize) = T::ZERO;
                }
            }
        }
        return;
    }
    let threads = crate::num_threads();
    let par = if m * n * k >= 64 * 64 * 64 && threads != 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm::<T>(
        m,
        n,
        k,
        dst.0,
        1,
        dst.1,
        accumulate,
        a.0,
        a.2,
        a.1,
        b.0,
        b.2,
        b.1,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        par,
    );
}

fn conv_forward<T: Float>(
    op: &'static str,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    g: &Geom,
) -> Result<Vec<T>> {
    let (l, og, kg) = (g.l(), g.og(), g.kg());
    let mut y = try_alloc::<T>(op, g.n * g.o * l, T::ZERO)?;
    let Scratch {
        chunk,
        mut cols,
        perm: mut tmp,
    } = Scratch::new(op, g)?;
    for n0 in (0..g.n).step_by(chunk) {
        let nc = chunk.min(g.n - n0);
        let width = nc * l;
        fill_cols(x, g, n0, nc, &mut cols[..g.c * g.kk() * width]);
        // One sample: the product lands in y itself; several: in (o, nc·l), then permuted.
        let (dst, rs): (*mut T, usize) = if chunk == 1 {
            (y[n0 * g.o * l..].as_mut_ptr(), l)
        } else {
            (tmp.as_mut_ptr(), width)
        };
        for gi in 0..g.g {
            // SAFETY: w is (o, kg), cols (g·kg, width), dst (o, rs ≥ width) row-major.
            unsafe {
                gemm_into(
                    og,
                    width,
                    kg,
                    (dst.add(gi * og * rs), rs as isize),
                    false,
                    (w[gi * og * kg..].as_ptr(), kg as isize, 1),
                    (cols[gi * kg * width..].as_ptr(), width as isize, 1),
                );
            }
        }
        if chunk > 1 {
            for i in 0..nc {
                for oc in 0..g.o {
                    let d = &mut y[((n0 + i) * g.o + oc) * l..][..l];
                    d.copy_from_slice(&tmp[oc * width + i * l..][..l]);
                }
            }
        }
    }
    if let Some(b) = b {
        for (row, &bv) in y.chunks_mut(l.max(1)).zip(b.iter().cycle()) {
            for e in row {
                *e += bv;
            }
        }
    }
    Ok(y)
}

/// `gy` (n, o, l) for samples `n0..n0+nc` as one (o, nc·l) matrix.
fn gather_rows<T: Float>(gy: &[T], g: &Geom, n0: usize, nc: usize, out: &mut [T]) {
    let (l, width) = (g.l(), nc * g.l());
    for i in 0..nc {
        for oc in 0..g.o {
            out[oc * width + i * l..][..l].copy_from_slice(&gy[((n0 + i) * g.o + oc) * l..][..l]);
        }
    }
}

fn conv_input_kernel<T: Float>(op: &'static str, gy: &[T], w: &[T], g: &Geom) -> Result<Vec<T>> {
    let (l, og, kg) = (g.l(), g.og(), g.kg());
    let plane = g.c * g.h * g.w;
    let mut gx = try_alloc::<T>(op, g.n * plane, T::ZERO)?;
    let Scratch {
        chunk,
        mut cols,
        perm: mut gperm,
    } = Scratch::new(op, g)?;
    let one = Geom { c: 1, ..*g };
    for n0 in (0..g.n).step_by(chunk) {
        let nc = chunk.min(g.n - n0);
        let width = nc * l;
        let (src, rs): (*const T, usize) = if chunk == 1 {
            (gy[n0 * g.o * l..].as_ptr(), l)
        } else {
            gather_rows(gy, g, n0, nc, &mut gperm);
            (gperm.as_ptr(), width)
        };
        for gi in 0..g.g {
            // SAFETY: w^T is (kg, og) read through w's strides; src (o, rs ≥ width); cols
            // (g·kg, width).
            unsafe {
                gemm_into(
                    kg,
                    width,
                    og,
                    (cols[gi * kg * width..].as_mut_ptr(), width as isize),
                    false,
                    (w[gi * og * kg..].as_ptr(), 1, kg as isize),
                    (src.add(gi * og * rs), rs as isize, 1),
                );
            }
        }
        let kk = g.kk();
        let cols = &cols[..g.c * kk * width];
        let gx_block = &mut gx[n0 * plane..(n0 + nc) * plane];
        // Each (sample, channel) plane takes its kk rows; planes are disjoint.
        let hw = g.h * g.w;
        let run = |(pi, dst): (usize, &mut [T])| {
            let (i, ci) = (pi / g.c, pi % g.c);
            col2im(
                &cols[ci * kk * width..][..kk * width],
                &one,
                dst,
                width,
                i * l,
            );
        };
        if gx_block.len() * kk >= 1 << 15 && hw > 0 {
            gx_block.par_chunks_mut(hw).enumerate().for_each(run);
        } else if hw > 0 {
            gx_block.chunks_mut(hw).enumerate().for_each(run);
        }
    }
    Ok(gx)
}

fn conv_weight_kernel<T: Float>(op: &'static str, x: &[T], gy: &[T], g: &Geom) -> Result<Vec<T>> {
    let (l, og, kg) = (g.l(), g.og(), g.kg());
    let mut gw = try_alloc::<T>(op, g.o * kg, T::ZERO)?;
    let Scratch {
        chunk,
        mut cols,
        perm: mut gperm,
    } = Scratch::new(op, g)?;
    for n0 in (0..g.n).step_by(chunk) {
        let nc = chunk.min(g.n - n0);
        let width = nc * l;
        fill_cols(x, g, n0, nc, &mut cols[..g.c * g.kk() * width]);
        let (src, rs): (*const T, usize) = if chunk == 1 {
            (gy[n0 * g.o * l..].as_ptr(), l)
        } else {
            gather_rows(gy, g, n0, nc, &mut gperm);
            (gperm.as_ptr(), width)
        };
        for gi in 0..g.g {
            // SAFETY: src (o, rs ≥ width); cols^T is (width, kg) through cols' strides; gw
            // (o, kg).
            unsafe {
                gemm_into(
                    og,
                    kg,
                    width,
                    (gw[gi * og * kg..].as_mut_ptr(), kg as isize),
                    true,
                    (src.add(gi * og * rs), rs as isize, 1),
                    (cols[gi * kg * width..].as_ptr(), 1, width as isize),
                );
            }
        }
    }
    Ok(gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec2(stride: usize, pad: usize, dil: usize, groups: usize) -> ConvSpec {
        ConvSpec::new(
            "conv2d",
            &[stride; 2],
            &[pad; 2],
            &[pad; 2],
            &[dil; 2],
            groups,
        )
        .unwrap()
    }

    /// Direct six-loop convolution, the reference.
    fn naive(x: &[f64], w: &[f64], g: &Geom) -> Vec<f64> {
        let mut y = vec![0.0; g.n * g.o * g.l()];
        let (cg, og) = (g.c / g.g, g.og());
        for n in 0..g.n {
            for o in 0..g.o {
                let gi = o / og;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = 0.0;
                        for c in 0..cg {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                                    let ix = (ox * g.sw + kj * g.dw) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * g.c + gi * cg + c) * g.h + iy as usize) * g.w
                                        + ix as usize;
                                    let wi = ((o * cg + c) * g.kh + ki) * g.kw + kj;
                                    s += x[xi] * w[wi];
                                }
                            }
                        }
                        y[((n * g.o + o) * g.oh + oy) * g.ow + ox] = s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn im2col_gemm_matches_the_direct_loops() {
        for (stride, pad, dil, groups) in [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (3, 1, 1, 4)] {
            let spec = spec2(stride, pad, dil, groups);
            let (xs, ws) = ([3, 4, 9, 7], [8, 4 / groups, 3, 2]);
            let (_, g) = conv_geom("conv2d", &spec, &xs, &ws, "input").unwrap();
            let x: Vec<f64> = (0..xs.iter().product::<usize>())
                .map(|i| (i as f64 * 0.37).sin())
                .collect();
            let w: Vec<f64> = (0..ws.iter().product::<usize>())
                .map(|i| (i as f64 * 0.91).cos())
                .collect();
            let got = conv_forward("conv2d", &x, &w, None, &g).unwrap();
            let want = naive(&x, &w, &g);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
            // The input and weight gradients are the adjoints: <gy, conv(x, w)> pairs up.
            let gy: Vec<f64> = (0..got.len()).map(|i| (i as f64 * 0.13).cos()).collect();
            let gx = conv_input_kernel("t", &gy, &w, &g).unwrap();
            let gw = conv_weight_kernel("t", &x, &gy, &g).unwrap();
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
            let lhs = dot(&gy, &got);
            assert!((dot(&gx, &x) - lhs).abs() < 1e-9 * lhs.abs().max(1.0));
            assert!((dot(&gw, &w) - lhs).abs() < 1e-9 * lhs.abs().max(1.0));
        }
    }
}
