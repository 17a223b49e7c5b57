//! Fused, in-place optimizer updates: one pass over each parameter, no temporaries.
//! The update rules are PyTorch's (torch.optim.SGD, Adam, AdamW).
use crate::dtype::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::storage::{Element, Storage};
use crate::tensor::Tensor;

#[derive(Debug, Clone, Copy)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub maximize: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the weights directly instead of adding `wd * p` to the gradient.
    pub decoupled: bool,
    pub maximize: bool,
}

/// The elements of a tensor the optimizer may write, checked to be one dense block.
///
/// # Safety
/// The caller holds the only writer of this buffer for the duration of the step.
#[allow(clippy::mut_from_ref)]
unsafe fn dense_mut<'a, T: Element>(op: &'static str, t: &'a Tensor) -> Result<&'a mut [T]> {
    let b = T::unwrap(t.storage())
        .ok_or_else(|| Error::type_(op, "state dtype differs from the parameter's"))?;
    if !t.is_contiguous() {
        return Err(Error::value(
            op,
            "parameters and optimizer state must be contiguous",
        ));
    }
    let start = t.layout().offset;
    Ok(unsafe { &mut b.as_mut_slice()[start..start + t.numel()] })
}

/// Shapes agree, and no two of the tensors share a buffer: the step writes the parameter and
/// the state through `&mut` slices, which must not alias each other or the gradient.
fn check(op: &'static str, p: &Tensor, others: &[&Tensor]) -> Result<()> {
    let all: Vec<&Tensor> = std::iter::once(p).chain(others.iter().copied()).collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.numel() > 0 && a.storage().ptr() == b.storage().ptr() {
                return Err(Error::value(
                    op,
                    "the parameter, its gradient and each state buffer must be separate tensors",
                ));
            }
        }
    }
    for o in others {
        if o.shape() != p.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "parameter has shape {} but its gradient or state has shape {}",
                    fmt_shape(p.shape()),
                    fmt_shape(o.shape())
                ),
            ));
        }
    }
    Ok(())
}

/// One SGD step on `param` with `grad`; `buf` is the momentum buffer (`first`: not yet set).
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    buf: Option<&Tensor>,
    first: bool,
    h: &Sgd,
) -> Result<()> {
    let mut others = vec![grad];
    others.extend(buf);
    check("SGD", param, &others)?;
    let grad = grad.to_dtype(param.dtype())?.contiguous()?;
    macro_rules! run {
        ($T:ty) => {{
            // SAFETY: the optimizer owns its state buffers; parameters are written only here.
            let p = unsafe { dense_mut::<$T>("SGD", param)? };
            let g = grad.as_slice::<$T>().expect("contiguous, cast above");
            let mut b = match buf {
                Some(b) => Some(unsafe { dense_mut::<$T>("SGD", b)? }),
                None => None,
            };
            let c = |x: f64| <$T>::from_f64(x);
            let (lr, mom, damp, wd) = (
                c(h.lr),
                c(h.momentum),
                c(1.0 - h.dampening),
                c(h.weight_decay),
            );
            for i in 0..p.len() {
                let mut d = if h.maximize { -g[i] } else { g[i] };
                d += wd * p[i];
                if let Some(b) = b.as_deref_mut() {
                    b[i] = if first { d } else { mom * b[i] + damp * d };
                    d = if h.nesterov { d + mom * b[i] } else { b[i] };
                }
                p[i] -= lr * d;
            }
        }};
    }
    match param.storage() {
        Storage::F32(_) => run!(f32),
        Storage::F64(_) => run!(f64),
        _ => return Err(Error::type_("SGD", "parameters must be float tensors")),
    }
    // An in-place write, as torch counts it: a graph that saved the old value refuses it.
    crate::node::bump_version(param);
    Ok(())
}

/// One Adam/AdamW step; `step` counts from 1 for the bias corrections. With `max_exp_avg_sq` (AMSGrad),
/// the running maximum of `v` takes `v`'s place in the denominator.
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    max_exp_avg_sq: Option<&Tensor>,
    step: u64,
    h: &Adam,
) -> Result<()> {
    let mut others = vec![grad, m, v];
    others.extend(max_exp_avg_sq);
    check("Adam", param, &others)?;
    let grad = grad.to_dtype(param.dtype())?.contiguous()?;
    let bc1 = 1.0 - h.beta1.powi(step as i32);
    let bc2_sqrt = (1.0 - h.beta2.powi(step as i32)).sqrt();
    macro_rules! run {
        ($T:ty) => {{
            // SAFETY: as in `sgd_step`.
            let p = unsafe { dense_mut::<$T>("Adam", param)? };
            let (m, v) = unsafe { (dense_mut::<$T>("Adam", m)?, dense_mut::<$T>("Adam", v)?) };
            let mut max_exp_avg_sq = match max_exp_avg_sq {
                Some(t) => Some(unsafe { dense_mut::<$T>("Adam", t)? }),
                None => None,
            };
            let g = grad.as_slice::<$T>().expect("contiguous, cast above");
            let c = |x: f64| <$T>::from_f64(x);
            let (b1, b2, eps) = (c(h.beta1), c(h.beta2), c(h.eps));
            let (one, wd, step_size, bc2s) =
                (c(1.0), c(h.weight_decay), c(h.lr / bc1), c(bc2_sqrt));
            let decay = c(1.0 - h.lr * h.weight_decay);
            for i in 0..p.len() {
                let mut d = if h.maximize { -g[i] } else { g[i] };
                if h.decoupled {
                    p[i] *= decay;
                } else {
                    d += wd * p[i];
                }
                m[i] = b1 * m[i] + (one - b1) * d;
                v[i] = b2 * v[i] + (one - b2) * d * d;
                let mut denom = v[i];
                if let Some(vm) = max_exp_avg_sq.as_deref_mut() {
                    vm[i] = vm[i].max_(v[i]);
                    denom = vm[i];
                }
                p[i] -= step_size * m[i] / (denom.sqrt() / bc2s + eps);
            }
        }};
    }
    match param.storage() {
        Storage::F32(_) => run!(f32),
        Storage::F64(_) => run!(f64),
        _ => return Err(Error::type_("Adam", "parameters must be float tensors")),
    }
    // An in-place write, as torch counts it: a graph that saved the old value refuses it.
    crate::node::bump_version(param);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
    }

    #[test]
    fn sgd_momentum_matches_formula() {
        let p = t(&[1.0]);
        let b = t(&[0.0]);
        let h = Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            maximize: false,
        };
        sgd_step(&p, &t(&[2.0]), Some(&b), true, &h).unwrap();
        assert!((p.to_vec_f64().unwrap()[0] - 0.8).abs() < 1e-12);
        sgd_step(&p, &t(&[2.0]), Some(&b), false, &h).unwrap();
        // buf = 0.9*2 + 2 = 3.8; p = 0.8 - 0.38
        assert!((p.to_vec_f64().unwrap()[0] - 0.42).abs() < 1e-12);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let p = t(&[1.0]);
        let (m, v) = (t(&[0.0]), t(&[0.0]));
        let h = Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            maximize: false,
        };
        adam_step(&p, &t(&[3.0]), &m, &v, None, 1, &h).unwrap();
        assert!((p.to_vec_f64().unwrap()[0] - 0.9).abs() < 1e-6);
    }

    #[test]
    fn amsgrad_keeps_the_largest_second_moment() {
        let h = Adam {
            lr: 0.1,
            beta1: 0.0,
            beta2: 0.5,
            eps: 0.0,
            weight_decay: 0.0,
            decoupled: false,
            maximize: false,
        };
        let p = t(&[0.0]);
        let (m, v, max_exp_avg_sq) = (t(&[0.0]), t(&[0.0]), t(&[0.0]));
        adam_step(&p, &t(&[2.0]), &m, &v, Some(&max_exp_avg_sq), 1, &h).unwrap();
        // v = 2, then 0.5·2 + 0.5·0.25 = 1.125: the maximum stays 2.
        adam_step(&p, &t(&[0.5]), &m, &v, Some(&max_exp_avg_sq), 2, &h).unwrap();
        assert_eq!(max_exp_avg_sq.to_vec_f64().unwrap(), vec![2.0]);
        assert_eq!(v.to_vec_f64().unwrap(), vec![1.125]);
        // step 2: p -= 0.1·0.5/(sqrt(2)/sqrt(0.75)); step 1 moved p by -0.1.
        let want = -0.1 - 0.1 * 0.5 / (2f64.sqrt() / 0.75f64.sqrt());
        assert!((p.to_vec_f64().unwrap()[0] - want).abs() < 1e-12);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let h = Sgd {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            maximize: false,
        };
        assert!(sgd_step(&t(&[1.0]), &t(&[1.0, 2.0]), None, true, &h).is_err());
    }
}
