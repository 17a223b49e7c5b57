//! Batch normalization as one node: the statistics and the affine map in two passes over
//! the input. Its backward is written with `Node` ops that recompute the statistics from the
//! input, so gradients of gradients follow the batch statistics too.
use rayon::prelude::*;

use crate::dtype::{Float, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::node::{Attr, Ctx, Node, Op};
use crate::storage::{try_alloc, Storage};
use crate::tensor::{with_dtype, Tensor};
use crate::Unary;

/// `batch_norm` of (N, C, ...) over every dim but C; parents `[x, weight?, bias?]`.
struct BatchNorm {
    has_weight: bool,
    has_bias: bool,
    eps: f64,
    /// Eval mode: the (mean, var) it normalized with, constants for the backward.
    fixed: Option<(Tensor, Tensor)>,
}

impl Op for BatchNorm {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut out = vec![
            ("eps", Attr::Float(self.eps)),
            ("has_weight", Attr::Int(self.has_weight as i64)),
            ("has_bias", Attr::Int(self.has_bias as i64)),
        ];
        if let Some((mean, var)) = &self.fixed {
            out.push(("mean", Attr::Tensor(mean.clone())));
            out.push(("var", Attr::Tensor(var.clone())));
        }
        out
    }
    fn name(&self) -> &'static str {
        "batch_norm"
    }
    fn rule(&self) -> &'static str {
        "x̂ = (x − mean)/√(var + eps); grad_x = w/√(var + eps)·(g − mean(g) − x̂·mean(g·x̂)) \
         (batch statistics) or w·g/√(var + eps) (running ones), grad_w = Σ g·x̂, grad_b = Σ g"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let x = c.parent(0);
        let nd = x.ndim();
        let dims: Vec<isize> = (0..nd as isize).filter(|&d| d != 1).collect();
        let channels = x.shape()[1];
        let mut view = vec![1; nd];
        view[1] = channels;
        let dt = x.dtype();
        let eps = Node::constant(self.eps, dt);
        let (xhat, invstd) = match &self.fixed {
            None => {
                let mean = x.mean(Some(&dims), true)?;
                let xc = x.sub(&mean)?;
                let var = xc.mul(&xc)?.mean(Some(&dims), true)?;
                let invstd = Node::constant(1.0, dt).div(&var.add(&eps)?.unary(Unary::Sqrt)?)?;
                (xc.mul(&invstd)?, invstd)
            }
            Some((mean, var)) => {
                let mean = Node::leaf(mean.reshape(&view)?, false);
                let std = Node::leaf(var.reshape(&view)?, false)
                    .add(&eps)?
                    .unary(Unary::Sqrt)?;
                let invstd = Node::constant(1.0, dt).div(&std)?;
                (x.sub(&mean)?.mul(&invstd)?, invstd)
            }
        };
        let w = self
            .has_weight
            .then(|| c.parent(1).reshape(&view))
            .transpose()?;
        let scale = match &w {
            Some(w) => invstd.mul(w)?,
            None => invstd.clone(),
        };
        let gx = c.grad_for(0, || {
            if self.fixed.is_some() {
                return g.mul(&scale);
            }
            let gm = g.mean(Some(&dims), true)?;
            let gxm = g.mul(&xhat)?.mean(Some(&dims), true)?;
            g.sub(&gm)?.sub(&xhat.mul(&gxm)?)?.mul(&scale)
        })?;
        let mut grads = vec![gx];
        if self.has_weight {
            grads.push(c.grad_for(1, || g.mul(&xhat)?.sum(Some(&dims), false))?);
        }
        if self.has_bias {
            let i = 1 + usize::from(self.has_weight);
            grads.push(c.grad_for(i, || g.sum(Some(&dims), false))?);
        }
        Ok(grads)
    }
}

impl Node {
    /// torch's `batch_norm` on (N, C, ...): with `stats` None, the batch's mean and biased
    /// variance per channel (returned, for the running statistics); else those given.
    pub fn batch_norm(
        &self,
        weight: Option<&Node>,
        bias: Option<&Node>,
        stats: Option<(&Node, &Node)>,
        eps: f64,
    ) -> Result<(Node, Tensor, Tensor)> {
        let op = "batch_norm";
        let shape = self.shape();
        if shape.len() < 2 || !self.dtype().is_float() {
            return Err(Error::shape(
                op,
                format!(
                    "expected a float (N, C, ...) input, got {} of shape {}",
                    self.dtype(),
                    fmt_shape(&shape)
                ),
            ));
        }
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        let dt = self.dtype();
        let per_channel = |what: &str, t: &Node| -> Result<Node> {
            if t.shape().as_slice() != [c] {
                return Err(Error::shape(
                    op,
                    format!(
                        "{what} must have shape ({c},) for input of shape {}, got {}",
                        fmt_shape(&shape),
                        fmt_shape(&t.shape())
                    ),
                ));
            }
            t.to_dtype(dt)
        };
        let w = weight.map(|w| per_channel("weight", w)).transpose()?;
        let b = bias.map(|b| per_channel("bias", b)).transpose()?;
        let fixed = match stats {
            Some((m, v)) => Some((
                per_channel("running_mean", m)?.tensor().contiguous()?,
                per_channel("running_var", v)?.tensor().contiguous()?,
            )),
            None => {
                // An empty batch gives an empty output, as torch.
                if n * s == 1 {
                    return Err(Error::value(
                        op,
                        format!(
                            "expected more than 1 value per channel when training, got input \
                             of shape {}",
                            fmt_shape(&shape)
                        ),
                    ));
                }
                None
            }
        };
        let xt = self.tensor().contiguous()?;
        let wt = w.as_ref().map(|w| w.tensor().contiguous()).transpose()?;
        let bt = b.as_ref().map(|b| b.tensor().contiguous()).transpose()?;
        let (y, mean, var) = with_dtype!(op, xt.storage(), T, _xb => {
            let x = xt.as_slice::<T>().expect("contiguous");
            let (mean, var): (Vec<T>, Vec<T>) = match &fixed {
                Some((m, v)) => (
                    m.as_slice::<T>().expect("contiguous").to_vec(),
                    v.as_slice::<T>().expect("contiguous").to_vec(),
                ),
                None => channel_stats(x, n, c, s),
            };
            let wv = wt.as_ref().map(|t| t.as_slice::<T>().expect("contiguous"));
            let bv = bt.as_ref().map(|t| t.as_slice::<T>().expect("contiguous"));
            // y = x·scale + shift per channel.
            let (scale, shift): (Vec<T>, Vec<T>) = (0..c)
                .map(|ci| {
                    let inv = 1.0 / (var[ci].to_f64() + eps).sqrt();
                    let sc = wv.map_or(inv, |w| w[ci].to_f64() * inv);
                    let sh = bv.map_or(0.0, |b| b[ci].to_f64()) - mean[ci].to_f64() * sc;
                    (T::from_f64(sc), T::from_f64(sh))
                })
                .unzip();
            let mut y = try_alloc::<T>(op, x.len(), T::ZERO)?;
            let run = |(i, out): (usize, &mut [T])| {
                let ci = i % c;
                let (sc, sh) = (scale[ci], shift[ci]);
                for (o, &v) in out.iter_mut().zip(&x[i * s..][..s]) {
                    *o = v * sc + sh;
                }
            };
            if x.len() >= 1 << 16 && s > 0 {
                y.par_chunks_mut(s).enumerate().for_each(run);
            } else if s > 0 {
                y.chunks_mut(s).enumerate().for_each(run);
            }
            Ok::<_, Error>((
                Tensor::from_vec(y, &shape)?,
                Tensor::from_vec(mean, &[c])?,
                Tensor::from_vec(var, &[c])?,
            ))
        })?;
        let mut parents = vec![self.clone()];
        parents.extend(w);
        parents.extend(b);
        let node = Node::from_op(
            y,
            BatchNorm {
                has_weight: weight.is_some(),
                has_bias: bias.is_some(),
                eps,
                fixed,
            },
            parents,
        );
        Ok((node, mean, var))
    }
}

/// Per-channel mean and biased variance of (n, c, s) data, in f64 and two passes.
fn channel_stats<T: Float>(x: &[T], n: usize, c: usize, s: usize) -> (Vec<T>, Vec<T>) {
    let count = (n * s) as f64;
    let stats = |ci: usize| {
        let planes = (0..n).map(|ni| &x[(ni * c + ci) * s..][..s]);
        let sum: f64 = planes.clone().map(|p| sum_f64(p, None)).sum();
        let mean = sum / count;
        let sq: f64 = planes.map(|p| sum_f64(p, Some(mean))).sum();
        (T::from_f64(mean), T::from_f64(sq / count))
    };
    if n * c * s >= 1 << 16 {
        (0..c).into_par_iter().map(stats).unzip()
    } else {
        (0..c).map(stats).unzip()
    }
}

/// `Σ v`, or with a centre `Σ (v − centre)²`, in four f64 lanes.
fn sum_f64<T: Float>(p: &[T], centre: Option<f64>) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = p.chunks_exact(4);
    let tail = chunks.remainder();
    let term = |v: T| match centre {
        None => v.to_f64(),
        Some(m) => (v.to_f64() - m) * (v.to_f64() - m),
    };
    for ch in chunks {
        for i in 0..4 {
            acc[i] += term(ch[i]);
        }
    }
    acc.iter().sum::<f64>() + tail.iter().map(|&v| term(v)).sum::<f64>()
}
