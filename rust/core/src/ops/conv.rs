//! Convolutions over 1 or 2 spatial dims: `conv`, its transpose (`conv_input`, the input's
//! gradient) and `conv_weight` (the weight's gradient), plus `unfold`/`fold` (im2col and
//! col2im as user ops). The kernels are im2col + gemm. The three conv ops' backward rules
//! are written with each other, so they close under differentiation (gradients of
//! gradients need nothing more).
use rayon::prelude::*;

use crate::dtype::{DType, Float, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::layout::checked_numel;
use crate::node::{Attr, Ctx, Node, Op};
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
    /// The settings an exporter needs, for the spatial dims the user's tensors have.
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let d = self.dims;
        vec![
            ("stride", Attr::dims(&self.stride[2 - d..])),
            ("pad_lo", Attr::dims(&self.pad_lo[2 - d..])),
            ("pad_hi", Attr::dims(&self.pad_hi[2 - d..])),
            ("dilation", Attr::dims(&self.dilation[2 - d..])),
            ("groups", Attr::Int(self.groups as i64)),
        ]
    }
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
    /// Sizes that overflow give None too (they could never be allocated).
    fn out_len(&self, d: usize, len: usize, k: usize) -> Option<usize> {
        let padded = len
            .checked_add(self.pad_lo[d])?
            .checked_add(self.pad_hi[d])?;
        let span = self.dilation[d]
            .checked_mul(k.checked_sub(1)?)?
            .checked_add(1)?;
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
            .map(|d| {
                [h, wd][d]
                    .saturating_add(spec.pad_lo[d])
                    .saturating_add(spec.pad_hi[d])
            })
            .skip(2 - spec.dims)
            .collect();
        let kernel: Vec<usize> = (0..2)
            .map(|d| {
                spec.dilation[d]
                    .saturating_mul([kh, kw][d].max(1) - 1)
                    .saturating_add(1)
            })
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
    // Sizes that would overflow are refused here, before any kernel multiplies them.
    checked_numel(op, &[n, w[0], oh, ow])?;
    checked_numel(op, &[c, kh, kw, oh, ow, n])?;
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
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        self.spec.attrs()
    }
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
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        self.spec.attrs()
    }
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
            c.grad_for(0, || {
                crop_to(h.conv(w, None, &self.spec)?, y, self.spec.dims)
            })?,
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
            c.grad_for(1, || {
                crop_to(x.conv(h, None, &self.spec)?, gy, self.spec.dims)
            })?,
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
        let (batched, mut geo) = conv_geom(op, spec, x_shape, &ws, "output")?;
        fit_out(op, "input", &self.shape(), batched, &mut geo, &ws, x_shape)?;
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
        let (batched, mut geo) = conv_geom(op, spec, &xs, w_shape, "input")?;
        fit_out(
            op,
            "output gradient",
            &gy.shape(),
            batched,
            &mut geo,
            w_shape,
            &xs,
        )?;
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

/// Checks an operand shaped as `conv`'s output against the geometry, and takes its spatial
/// size, which may be smaller than a full conv gives: a transposed conv's `output_padding`
/// can add input rows that no output reads (torch allows it below the dilation).
fn fit_out(
    op: &'static str,
    what: &str,
    got: &[usize],
    batched: bool,
    geo: &mut Geom,
    w: &[usize],
    x: &[usize],
) -> Result<()> {
    let dims = x.len() - 1 - usize::from(batched);
    let want = user_shape(batched, dims, [geo.n, geo.o, geo.oh, geo.ow]);
    let lead = want.len() - dims;
    let fits = got.len() == want.len()
        && got[..lead] == want[..lead]
        && got[lead..]
            .iter()
            .zip(&want[lead..])
            .all(|(&g, &f)| g >= 1 && g <= f);
    if !fits {
        return Err(Error::shape(
            op,
            format!(
                "{what} of shape {} does not fit weight {} and image {}: expected shape {}",
                fmt_shape(got),
                fmt_shape(w),
                fmt_shape(x),
                fmt_shape(&want)
            ),
        ));
    }
    if dims == 2 {
        geo.oh = got[lead];
    }
    geo.ow = got[got.len() - 1];
    Ok(())
}

/// `y` narrowed to the spatial size of `like` (see `fit_out`); `y` itself when they agree.
fn crop_to(y: Node, like: &Node, dims: usize) -> Result<Node> {
    let (ys, ls) = (y.shape(), like.shape());
    let mut out = y;
    for d in ys.len() - dims..ys.len() {
        if ys[d] != ls[d] {
            out = out.narrow(d as isize, 0, ls[d])?;
        }
    }
    Ok(out)
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

/// Elements of im2col scratch per task, so the columns stay in the L2 cache.
const COLS_BUDGET: usize = 1 << 17;

/// How one sample's im2col columns are laid out. Strided convs use one column per output
/// position (`im2col` clips at the borders). Stride-1 convs read a zero-padded copy of the
/// input instead, with one column per position of the padded width (`oh·wp` per sample):
/// each kernel tap is then one contiguous run, and the `wp − ow` extra columns of each row
/// are computed and dropped.
struct Cols {
    /// Columns per sample.
    lw: usize,
    pad: Option<Padded>,
    /// Elements of one padded input plane (with slack for the last tap's run).
    plane: usize,
}

impl Cols {
    /// `finite`: the operand that meets the dropped columns in a product has no inf or NaN
    /// (else 0·inf would leak into kept results, and the clipping layout is used).
    fn new(g: &Geom, finite: bool) -> Cols {
        match Padded::new(g).filter(|_| finite && !direct(g)) {
            Some(p) => Cols {
                lw: g.oh * p.wp,
                plane: p.hp * p.wp + (g.kw - 1) * g.dw,
                pad: Some(p),
            },
            None => Cols {
                lw: g.l(),
                pad: None,
                plane: 0,
            },
        }
    }

    /// Writes the columns of samples `n0..n0 + nc` of `x` into `cols` (c·kk rows of
    /// `nc·lw`); `xp` is scratch for one padded sample.
    fn fill<T: Float>(
        &self,
        x: &[T],
        g: &Geom,
        n0: usize,
        nc: usize,
        cols: &mut [T],
        xp: &mut [T],
    ) {
        let (plane, width) = (g.c * g.h * g.w, nc * self.lw);
        for i in 0..nc {
            let xs = &x[(n0 + i) * plane..][..plane];
            let Some(p) = &self.pad else {
                im2col(xs, g, cols, width, i * self.lw);
                continue;
            };
            for ci in 0..g.c {
                p.input(
                    g,
                    &xs[ci * g.h * g.w..][..g.h * g.w],
                    &mut xp[ci * self.plane..][..p.hp * p.wp],
                );
            }
            for ci in 0..g.c {
                for tap in 0..g.kk() {
                    let src = &xp[ci * self.plane + p.offset(g, tap)..][..self.lw];
                    cols[(ci * g.kk() + tap) * width + i * self.lw..][..self.lw]
                        .copy_from_slice(src);
                }
            }
        }
    }

    /// The transpose of `fill`: adds the columns of `nc` samples back into `gx`, which
    /// starts at the block's first sample; `xp` is scratch for one padded sample.
    fn scatter<T: Float>(&self, cols: &[T], g: &Geom, nc: usize, gx: &mut [T], xp: &mut [T]) {
        let (plane, width, hw) = (g.c * g.h * g.w, nc * self.lw, g.h * g.w);
        for i in 0..nc {
            let dst = &mut gx[i * plane..][..plane];
            let Some(p) = &self.pad else {
                col2im(cols, g, dst, width, i * self.lw);
                continue;
            };
            xp.fill(T::ZERO);
            for ci in 0..g.c {
                for tap in 0..g.kk() {
                    let src = &cols[(ci * g.kk() + tap) * width + i * self.lw..][..self.lw];
                    let d = &mut xp[ci * self.plane + p.offset(g, tap)..][..self.lw];
                    for (a, &b) in d.iter_mut().zip(src) {
                        *a += b;
                    }
                }
                p.crop(
                    g,
                    &xp[ci * self.plane..][..p.hp * p.wp],
                    &mut dst[ci * hw..][..hw],
                );
            }
        }
    }

    /// `gy` (n, o, l) of samples `n0..n0 + nc` as an (o, nc·lw) matrix (pointer, row stride):
    /// gy itself when it is already laid out so, else a copy in `perm` (zeros in the
    /// dropped columns).
    fn gy_rows<T: Float>(
        &self,
        gy: &[T],
        g: &Geom,
        n0: usize,
        nc: usize,
        perm: &mut [T],
    ) -> (*const T, usize) {
        let (l, width) = (g.l(), nc * self.lw);
        if nc == 1 && self.pad.is_none() {
            return (gy[n0 * g.o * l..].as_ptr(), l);
        }
        let wp = self.pad.as_ref().map_or(g.ow, |p| p.wp);
        if wp != g.ow {
            perm[..g.o * width].fill(T::ZERO);
        }
        for i in 0..nc {
            for oc in 0..g.o {
                let src = &gy[((n0 + i) * g.o + oc) * l..][..l];
                let dst = &mut perm[oc * width + i * self.lw..][..self.lw];
                for oy in 0..g.oh {
                    dst[oy * wp..][..g.ow].copy_from_slice(&src[oy * g.ow..][..g.ow]);
                }
            }
        }
        (perm.as_ptr(), width)
    }

    /// The (o, nc·lw) product `tmp` back into y's samples (n, o, l), dropping the padded
    /// width's extra columns.
    fn drop_into<T: Float>(&self, tmp: &[T], g: &Geom, nc: usize, y: &mut [T]) {
        let (l, width) = (g.l(), nc * self.lw);
        let wp = self.pad.as_ref().map_or(g.ow, |p| p.wp);
        for i in 0..nc {
            for oc in 0..g.o {
                let src = &tmp[oc * width + i * self.lw..][..self.lw];
                let dst = &mut y[(i * g.o + oc) * l..][..l];
                for oy in 0..g.oh {
                    dst[oy * g.ow..][..g.ow].copy_from_slice(&src[oy * wp..][..g.ow]);
                }
            }
        }
    }

    /// Whether an (o, nc·lw) product can be written straight into y.
    fn direct_out(&self, nc: usize) -> bool {
        nc == 1 && self.pad.is_none()
    }
}

/// How a kernel splits its samples: blocks of `block` samples run as tasks on their own
/// threads, each in sub-batches of `sub` samples that share one product with the weight.
/// With one task, the products themselves use the threads (`par_gemm`).
#[derive(Clone, Copy, Debug)]
struct Plan {
    block: usize,
    sub: usize,
    par_gemm: bool,
}

impl Plan {
    fn new(g: &Geom, lw: usize) -> Plan {
        let threads = crate::thread_budget();
        let n = g.n.max(1);
        let cols = (g.c * g.kk() * lw).max(1);
        // Multiply-adds per sample: threads pay off from about a quarter million.
        let work = cols * g.og().max(1);
        let tasks = if threads > 1 && n >= 2 && work * n >= 1 << 18 {
            threads.min(n)
        } else {
            1
        };
        let block = n.div_ceil(tasks);
        Plan {
            block,
            sub: (COLS_BUDGET / cols).clamp(1, block),
            par_gemm: tasks == 1 && threads > 1,
        }
    }
}

/// One task's buffers: im2col columns for `sub` samples, room for an (o, sub·lw) matrix,
/// and one padded sample.
struct Scratch<T> {
    cols: Vec<T>,
    perm: Vec<T>,
    xp: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(op: &'static str, g: &Geom, p: &Plan, c: &Cols) -> Result<Scratch<T>> {
        Ok(Scratch {
            cols: try_alloc::<T>(op, g.c * g.kk() * p.sub * c.lw, T::ZERO)?,
            perm: try_alloc::<T>(op, g.o * p.sub * c.lw, T::ZERO)?,
            xp: try_alloc::<T>(op, g.c * c.plane, T::ZERO)?,
        })
    }
}

/// No inf or NaN in `v`: `e · 0` is 0 for finite `e` and NaN otherwise, summed in 8 lanes.
fn all_finite<T: Float>(v: &[T]) -> bool {
    let mut acc = [T::ZERO; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(T::ZERO, |a, &e| a + e * T::ZERO);
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] * T::ZERO;
        }
    }
    acc.iter().fold(tail, |a, &e| a + e) == T::ZERO
}

/// Runs `f(first sample, its block of out)` for each block of `plan.block` samples, in
/// parallel when there are several; `per_sample` is the out elements of one sample.
fn for_blocks<T: Float>(
    out: &mut [T],
    per_sample: usize,
    p: &Plan,
    f: impl Fn(usize, &mut [T]) -> Result<()> + Sync,
) -> Result<()> {
    let len = (p.block * per_sample).max(1);
    if out.len() <= len {
        return f(0, out);
    }
    out.par_chunks_mut(len)
        .enumerate()
        .map(|(t, blk)| f(t * p.block, blk))
        .collect()
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
    par: bool,
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
    let par = if par && m * n * k >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(crate::num_threads())
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

/// Depthwise-style convolutions (one input channel per group) run as direct loops: their
/// im2col products would be a row of 9 per group, all overhead.
fn direct(g: &Geom) -> bool {
    g.g > 1 && g.c == g.g
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
    // The direct loops skip padding taps; an inf or NaN weight must meet those zeros (as
    // torch's NaN there), so it takes the im2col path.
    if direct(g) && all_finite(w) {
        dw_forward(x, w, g, &mut y);
    } else {
        let c = Cols::new(g, true);
        let p = Plan::new(g, c.lw);
        for_blocks(&mut y, g.o * l, &p, |s0, yb| {
            let Scratch {
                mut cols,
                mut perm,
                mut xp,
            } = Scratch::new(op, g, &p, &c)?;
            let bn = yb.len() / (g.o * l).max(1);
            for n0 in (0..bn).step_by(p.sub) {
                let nc = p.sub.min(bn - n0);
                let width = nc * c.lw;
                c.fill(x, g, s0 + n0, nc, &mut cols, &mut xp);
                let (dst, rs): (*mut T, usize) = if c.direct_out(nc) {
                    (yb[n0 * g.o * l..].as_mut_ptr(), l)
                } else {
                    (perm.as_mut_ptr(), width)
                };
                for gi in 0..g.g {
                    // SAFETY: w is (o, kg), cols (g·kg, width), dst (o, rs ≥ width).
                    unsafe {
                        gemm_into(
                            og,
                            width,
                            kg,
                            (dst.add(gi * og * rs), rs as isize),
                            false,
                            (w[gi * og * kg..].as_ptr(), kg as isize, 1),
                            (cols[gi * kg * width..].as_ptr(), width as isize, 1),
                            p.par_gemm,
                        );
                    }
                }
                if !c.direct_out(nc) {
                    c.drop_into(&perm, g, nc, &mut yb[n0 * g.o * l..]);
                }
            }
            Ok(())
        })?;
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

fn conv_input_kernel<T: Float>(op: &'static str, gy: &[T], w: &[T], g: &Geom) -> Result<Vec<T>> {
    let (og, kg) = (g.og(), g.kg());
    let plane = g.c * g.h * g.w;
    let mut gx = try_alloc::<T>(op, g.n * plane, T::ZERO)?;
    // The padded planes' extra columns are zeros of gy that meet w; with an inf or NaN in w
    // the im2col path keeps 0·inf out of the kept results.
    if direct(g) && all_finite(w) {
        dw_input(gy, w, g, &mut gx);
        return Ok(gx);
    }
    // The dropped columns are zeros of gy; w meets them.
    let c = Cols::new(g, all_finite(w));
    let p = Plan::new(g, c.lw);
    for_blocks(&mut gx, plane, &p, |s0, gxb| {
        let Scratch {
            mut cols,
            mut perm,
            mut xp,
        } = Scratch::new(op, g, &p, &c)?;
        let bn = gxb.len() / plane.max(1);
        for n0 in (0..bn).step_by(p.sub) {
            let nc = p.sub.min(bn - n0);
            let width = nc * c.lw;
            let (src, rs) = c.gy_rows(gy, g, s0 + n0, nc, &mut perm);
            for gi in 0..g.g {
                // SAFETY: w^T is (kg, og) read through w's strides; src (o, rs ≥ width);
                // cols (g·kg, width).
                unsafe {
                    gemm_into(
                        kg,
                        width,
                        og,
                        (cols[gi * kg * width..].as_mut_ptr(), width as isize),
                        false,
                        (w[gi * og * kg..].as_ptr(), 1, kg as isize),
                        (src.add(gi * og * rs), rs as isize, 1),
                        p.par_gemm,
                    );
                }
            }
            c.scatter(&cols, g, nc, &mut gxb[n0 * plane..], &mut xp);
        }
        Ok(())
    })?;
    Ok(gx)
}

fn conv_weight_kernel<T: Float>(op: &'static str, x: &[T], gy: &[T], g: &Geom) -> Result<Vec<T>> {
    let (og, kg) = (g.og(), g.kg());
    // As in `conv_input_kernel`, with x meeting the zeros.
    if direct(g) && all_finite(x) {
        let mut gw = try_alloc::<T>(op, g.o * kg, T::ZERO)?;
        dw_weight(x, gy, g, &mut gw);
        return Ok(gw);
    }
    // The dropped columns hold x's values against zeros of gy.
    let c = Cols::new(g, all_finite(x));
    let p = Plan::new(g, c.lw);
    let tasks = g.n.max(1).div_ceil(p.block);
    // Each task sums its samples' products into its own partial gradient, kept transposed
    // (kg, og) per group: gemm runs cols · gyᵀ more than twice as fast as gy · colsᵀ.
    let partials: Vec<Vec<T>> = (0..tasks)
        .into_par_iter()
        .map(|t| -> Result<Vec<T>> {
            let mut gwt = try_alloc::<T>(op, g.o * kg, T::ZERO)?;
            let Scratch {
                mut cols,
                mut perm,
                mut xp,
            } = Scratch::new(op, g, &p, &c)?;
            let (s0, bn) = (t * p.block, p.block.min(g.n.saturating_sub(t * p.block)));
            for n0 in (0..bn).step_by(p.sub) {
                let nc = p.sub.min(bn - n0);
                let width = nc * c.lw;
                c.fill(x, g, s0 + n0, nc, &mut cols, &mut xp);
                let (src, rs) = c.gy_rows(gy, g, s0 + n0, nc, &mut perm);
                for gi in 0..g.g {
                    // SAFETY: cols (g·kg, width); gyᵀ is (width, og) through src's strides
                    // (o, rs ≥ width); gwt holds g blocks of (kg, og).
                    unsafe {
                        gemm_into(
                            kg,
                            og,
                            width,
                            (gwt[gi * og * kg..].as_mut_ptr(), og as isize),
                            true,
                            (cols[gi * kg * width..].as_ptr(), width as isize, 1),
                            (src.add(gi * og * rs), 1, rs as isize),
                            p.par_gemm,
                        );
                    }
                }
            }
            Ok(gwt)
        })
        .collect::<Result<_>>()?;
    let mut gw = try_alloc::<T>(op, g.o * kg, T::ZERO)?;
    for part in partials {
        for gi in 0..g.g {
            let block = &part[gi * og * kg..][..og * kg];
            for o in 0..og {
                let row = &mut gw[(gi * og + o) * kg..][..kg];
                for (r, e) in row.iter_mut().enumerate() {
                    *e += block[r * og + o];
                }
            }
        }
    }
    Ok(gw)
}

// ---- direct (depthwise) kernels -------------------------------------------------------------

/// The output columns `ox` whose input column `ox·sw + x0` lies in `0..w`.
fn valid_cols(x0: isize, sw: usize, w: usize, ow: usize) -> (usize, usize) {
    let s = sw as isize;
    let lo = if x0 >= 0 { 0 } else { (-x0 + s - 1) / s };
    let hi = if (w as isize) <= x0 {
        0
    } else {
        (w as isize - x0 + s - 1) / s
    };
    let hi = (hi as usize).min(ow);
    ((lo as usize).min(hi), hi)
}

/// Visits every (output row, input row, kernel tap) of one plane pair: `f(tap, oy, iy, x0)`.
fn for_taps(g: &Geom, mut f: impl FnMut(usize, usize, usize, isize)) {
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let x0 = (kj * g.dw) as isize - g.pw as isize;
            for oy in 0..g.oh {
                let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                if iy >= 0 && (iy as usize) < g.h {
                    f(ki * g.kw + kj, oy, iy as usize, x0);
                }
            }
        }
    }
}

/// Splits `buf` into planes of `len`, in parallel when the convolution is large.
fn for_planes<T: Float>(g: &Geom, buf: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let len = len.max(1);
    if g.n * g.o * g.l() * g.kk() >= 1 << 16 {
        buf.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, p)| f(i, p));
    } else {
        buf.chunks_mut(len).enumerate().for_each(|(i, p)| f(i, p));
    }
}

/// Stride-1 depthwise kernels work on planes held at one row stride `wp`: the input
/// zero-padded to (hp, wp) = (oh + (kh−1)·dh, ow + (kw−1)·dw), the output rows (zeros past
/// `ow`) at the same stride. Each kernel tap is then one long shifted run over the plane.
struct Padded {
    hp: usize,
    wp: usize,
    /// Elements of one tap's run: up to the last valid output.
    run: usize,
}

impl Padded {
    fn new(g: &Geom) -> Option<Padded> {
        if g.sh != 1 || g.sw != 1 || g.oh == 0 || g.ow == 0 {
            return None;
        }
        let wp = g.ow + (g.kw - 1) * g.dw;
        Some(Padded {
            hp: g.oh + (g.kh - 1) * g.dh,
            wp,
            run: (g.oh - 1) * wp + g.ow,
        })
    }
    fn offset(&self, g: &Geom, tap: usize) -> usize {
        (tap / g.kw) * g.dh * self.wp + (tap % g.kw) * g.dw
    }
    /// Writes input plane `x` (h, w) zero-padded into `buf` (hp, wp).
    fn input<T: Float>(&self, g: &Geom, x: &[T], buf: &mut [T]) {
        buf.fill(T::ZERO);
        for iy in 0..g.h {
            let py = iy + g.ph;
            if py >= self.hp {
                break;
            }
            let n = g.w.min(self.wp.saturating_sub(g.pw));
            buf[py * self.wp + g.pw..][..n].copy_from_slice(&x[iy * g.w..][..n]);
        }
    }
    /// The inverse of `input`: the (h, w) plane inside padded plane `buf` into `x`.
    fn crop<T: Float>(&self, g: &Geom, buf: &[T], x: &mut [T]) {
        let n = g.w.min(self.wp.saturating_sub(g.pw));
        for iy in 0..g.h {
            let py = iy + g.ph;
            if py < self.hp {
                x[iy * g.w..][..n].copy_from_slice(&buf[py * self.wp + g.pw..][..n]);
            }
        }
    }
    /// Writes output plane `y` (oh, ow) into `buf` at row stride wp, zeros past ow.
    fn output<T: Float>(&self, g: &Geom, y: &[T], buf: &mut [T]) {
        buf.fill(T::ZERO);
        for oy in 0..g.oh {
            buf[oy * self.wp..][..g.ow].copy_from_slice(&y[oy * g.ow..][..g.ow]);
        }
    }
}

fn axpy<T: Float>(a: T, x: &[T], y: &mut [T]) {
    for (d, &s) in y.iter_mut().zip(x) {
        *d += a * s;
    }
}

fn dw_forward<T: Float>(x: &[T], w: &[T], g: &Geom, y: &mut [T]) {
    let (hw, kk, og) = (g.h * g.w, g.kk(), g.og());
    if let Some(p) = Padded::new(g) {
        for_planes(g, y, g.l(), |plane, out| {
            let (n, oc) = (plane / g.o, plane % g.o);
            let mut xp = vec![T::ZERO; p.hp * p.wp];
            p.input(g, &x[(n * g.c + oc / og) * hw..][..hw], &mut xp);
            let mut acc = vec![T::ZERO; p.run];
            for (tap, &wv) in w[oc * kk..][..kk].iter().enumerate() {
                axpy(wv, &xp[p.offset(g, tap)..][..p.run], &mut acc);
            }
            for oy in 0..g.oh {
                out[oy * g.ow..][..g.ow].copy_from_slice(&acc[oy * p.wp..][..g.ow]);
            }
        });
        return;
    }
    for_planes(g, y, g.l(), |plane, out| {
        let (n, oc) = (plane / g.o, plane % g.o);
        let xs = &x[(n * g.c + oc / og) * hw..][..hw];
        let wk = &w[oc * kk..][..kk];
        for_taps(g, |tap, oy, iy, x0| {
            let wv = wk[tap];
            let (lo, hi) = valid_cols(x0, g.sw, g.w, g.ow);
            let dst = &mut out[oy * g.ow..][lo..hi];
            let src = &xs[iy * g.w..][..g.w];
            if g.sw == 1 {
                let s0 = (lo as isize + x0) as usize;
                for (d, &s) in dst.iter_mut().zip(&src[s0..s0 + hi - lo]) {
                    *d += wv * s;
                }
            } else {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d += wv * src[(((lo + j) * g.sw) as isize + x0) as usize];
                }
            }
        });
    });
}

fn dw_input<T: Float>(gy: &[T], w: &[T], g: &Geom, gx: &mut [T]) {
    let (hw, kk, og, l) = (g.h * g.w, g.kk(), g.og(), g.l());
    if let Some(p) = Padded::new(g) {
        for_planes(g, gx, hw, |plane, out| {
            let (n, ic) = (plane / g.c, plane % g.c);
            let mut acc = vec![T::ZERO; p.hp * p.wp];
            let mut gp = vec![T::ZERO; p.run.max(g.oh * p.wp)];
            for oc in ic * og..(ic + 1) * og {
                p.output(g, &gy[(n * g.o + oc) * l..][..l], &mut gp);
                for (tap, &wv) in w[oc * kk..][..kk].iter().enumerate() {
                    axpy(wv, &gp[..p.run], &mut acc[p.offset(g, tap)..][..p.run]);
                }
            }
            p.crop(g, &acc, out);
        });
        return;
    }
    for_planes(g, gx, hw, |plane, out| {
        let (n, ic) = (plane / g.c, plane % g.c);
        for oc in ic * og..(ic + 1) * og {
            let gs = &gy[(n * g.o + oc) * l..][..l];
            let wk = &w[oc * kk..][..kk];
            for_taps(g, |tap, oy, iy, x0| {
                let wv = wk[tap];
                let (lo, hi) = valid_cols(x0, g.sw, g.w, g.ow);
                let src = &gs[oy * g.ow..][lo..hi];
                let dst = &mut out[iy * g.w..][..g.w];
                if g.sw == 1 {
                    let d0 = (lo as isize + x0) as usize;
                    for (d, &s) in dst[d0..d0 + hi - lo].iter_mut().zip(src) {
                        *d += wv * s;
                    }
                } else {
                    for (j, &s) in src.iter().enumerate() {
                        dst[(((lo + j) * g.sw) as isize + x0) as usize] += wv * s;
                    }
                }
            });
        }
    });
}

fn dw_weight<T: Float>(x: &[T], gy: &[T], g: &Geom, gw: &mut [T]) {
    let (hw, kk, og, l) = (g.h * g.w, g.kk(), g.og(), g.l());
    if let Some(p) = Padded::new(g) {
        for_planes(g, gw, kk, |oc, out| {
            let mut xp = vec![T::ZERO; p.hp * p.wp];
            let mut gp = vec![T::ZERO; p.run.max(g.oh * p.wp)];
            for n in 0..g.n {
                p.input(g, &x[(n * g.c + oc / og) * hw..][..hw], &mut xp);
                p.output(g, &gy[(n * g.o + oc) * l..][..l], &mut gp);
                for (tap, e) in out.iter_mut().enumerate() {
                    *e += dot(&gp[..p.run], &xp[p.offset(g, tap)..][..p.run]);
                }
            }
        });
        return;
    }
    for_planes(g, gw, kk, |oc, out| {
        for n in 0..g.n {
            let xs = &x[(n * g.c + oc / og) * hw..][..hw];
            let gs = &gy[(n * g.o + oc) * l..][..l];
            for_taps(g, |tap, oy, iy, x0| {
                let (lo, hi) = valid_cols(x0, g.sw, g.w, g.ow);
                let a = &gs[oy * g.ow..][lo..hi];
                let src = &xs[iy * g.w..][..g.w];
                out[tap] += if g.sw == 1 {
                    let s0 = (lo as isize + x0) as usize;
                    dot(a, &src[s0..s0 + hi - lo])
                } else {
                    a.iter()
                        .enumerate()
                        .map(|(j, &v)| v * src[(((lo + j) * g.sw) as isize + x0) as usize])
                        .fold(T::ZERO, |s, t| s + t)
                };
            });
        }
    });
}

/// A dot product in 8 independent lanes, which the compiler keeps in vector registers.
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::ZERO, |s, (&p, &q)| s + p * q);
    for (pa, pb) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += pa[i] * pb[i];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
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
            check(
                stride,
                pad,
                dil,
                groups,
                [3, 4, 9, 7],
                [8, 4 / groups, 3, 2],
            );
        }
        // Depthwise (direct loops), with a channel multiplier, strided and dilated.
        for (stride, pad, dil) in [(1, 1, 1), (2, 0, 1), (1, 2, 2), (3, 1, 2)] {
            check(stride, pad, dil, 4, [2, 4, 10, 9], [8, 1, 3, 3]);
        }
        // Many samples: the blocks run as parallel tasks.
        check(1, 1, 1, 1, [40, 6, 12, 12], [8, 6, 3, 3]);
    }

    fn check(stride: usize, pad: usize, dil: usize, groups: usize, xs: [usize; 4], ws: [usize; 4]) {
        {
            let spec = spec2(stride, pad, dil, groups);
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
