//! Creation functions and the seeded random source behind `manual_seed`.
use std::sync::Mutex;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::checked_numel;
use crate::tensor::Tensor;

/// xoshiro256++, seeded through splitmix64: small, fast and reproducible everywhere.
struct Rng([u64; 4]);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    fn normal(&mut self) -> f64 {
        // Box-Muller; 1 - u keeps the log finite.
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

static RNG: Mutex<Option<Rng>> = Mutex::new(None);

fn with_rng<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    let mut g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(|| Rng::seeded(0x5EED)))
}

pub fn manual_seed(seed: u64) {
    *RNG.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng::seeded(seed));
}

fn from_f64s(op: &'static str, v: Vec<f64>, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let _ = op;
    match dtype {
        DType::F64 => Tensor::from_vec(v, shape),
        DType::F32 => Tensor::from_vec(v.into_iter().map(|x| x as f32).collect(), shape),
    }
}

fn sample(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    f: impl Fn(&mut Rng) -> f64,
) -> Result<Tensor> {
    let n = checked_numel(op, shape)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::Alloc {
        op,
        bytes: n as u128 * 8,
    })?;
    with_rng(|r| v.extend((0..n).map(|_| f(r))));
    from_f64s(op, v, shape, dtype)
}

/// Uniform in [low, high).
pub fn rand(shape: &[usize], low: f64, high: f64, dtype: DType) -> Result<Tensor> {
    sample("rand", shape, dtype, |r| low + (high - low) * r.uniform())
}

pub fn randn(shape: &[usize], mean: f64, std: f64, dtype: DType) -> Result<Tensor> {
    sample("randn", shape, dtype, |r| mean + std * r.normal())
}

/// A random permutation of 0..n (Fisher-Yates), from the same seeded source.
pub fn randperm(n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    with_rng(|r| {
        for i in (1..n).rev() {
            let j = (r.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
    });
    p
}

pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
        return Err(Error::value(
            "arange",
            format!("bad range: start={start}, end={end}, step={step}"),
        ));
    }
    let n = ((end - start) / step).ceil().max(0.0);
    if n > (isize::MAX / 8) as f64 {
        return Err(Error::Alloc {
            op: "arange",
            bytes: u128::MAX,
        });
    }
    let n = n as usize;
    from_f64s(
        "arange",
        (0..n).map(|i| start + i as f64 * step).collect(),
        &[n],
        dtype,
    )
}

pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType) -> Result<Tensor> {
    checked_numel("linspace", &[steps])?;
    let v = (0..steps)
        .map(|i| {
            if steps == 1 {
                start
            } else {
                start + (end - start) * i as f64 / (steps - 1) as f64
            }
        })
        .collect();
    from_f64s("linspace", v, &[steps], dtype)
}

pub fn eye(n: usize, m: usize, dtype: DType) -> Result<Tensor> {
    let total = checked_numel("eye", &[n, m])?;
    let mut v = Vec::new();
    v.try_reserve_exact(total).map_err(|_| Error::Alloc {
        op: "eye",
        bytes: total as u128 * 8,
    })?;
    v.extend((0..total).map(|k| {
        if k / m.max(1) == k % m.max(1) {
            1.0
        } else {
            0.0
        }
    }));
    from_f64s("eye", v, &[n, m], dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_repeats() {
        manual_seed(3);
        let a = randn(&[5], 0.0, 1.0, DType::F64).unwrap().to_vec_f64();
        manual_seed(3);
        let b = randn(&[5], 0.0, 1.0, DType::F64).unwrap().to_vec_f64();
        assert_eq!(a, b);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            arange(0.0, 1.0, 0.25, DType::F64).unwrap().to_vec_f64(),
            vec![0., 0.25, 0.5, 0.75]
        );
        assert_eq!(
            linspace(0.0, 1.0, 3, DType::F64).unwrap().to_vec_f64(),
            vec![0., 0.5, 1.0]
        );
        assert_eq!(
            eye(2, 3, DType::F64).unwrap().to_vec_f64(),
            vec![1., 0., 0., 0., 1., 0.]
        );
        assert!(arange(0.0, 1.0, 0.0, DType::F64).is_err());
    }
}
