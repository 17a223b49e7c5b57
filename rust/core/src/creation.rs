//! Creation functions (the random ones are in `random.rs`).

use crate::dtype::{Bool8, DType};
use crate::error::{Error, Result};
use crate::layout::checked_numel;
use crate::storage::{try_alloc, Element};
use crate::tensor::Tensor;

/// A tensor of `shape` whose i-th element (row-major) is `f(i)` cast to `dtype`, allocated
/// fallibly.
fn fill(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    f: impl FnMut(usize) -> f64,
) -> Result<Tensor> {
    fn build<T: Element>(
        op: &'static str,
        shape: &[usize],
        mut f: impl FnMut(usize) -> f64,
    ) -> Result<Tensor> {
        let n = checked_numel(op, shape)?;
        let mut v = try_alloc::<T>(op, 0, T::ZERO)?;
        v.try_reserve_exact(n).map_err(|_| Error::Alloc {
            op,
            bytes: (n * T::DTYPE.size()) as u128,
        })?;
        v.extend((0..n).map(|i| T::cast(f(i))));
        Tensor::from_vec(v, shape)
    }
    match dtype {
        DType::Bool => build::<Bool8>(op, shape, f),
        DType::I32 => build::<i32>(op, shape, f),
        DType::I64 => build::<i64>(op, shape, f),
        DType::F32 => build::<f32>(op, shape, f),
        DType::F64 => build::<f64>(op, shape, f),
    }
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
    fill("arange", &[n as usize], dtype, |i| start + i as f64 * step)
}

/// Integer `arange`, exact over all of int64 (the float form rounds past 2**53); the
/// int64 values are then cast to `dtype`.
pub fn arange_int(start: i64, end: i64, step: i64, dtype: DType) -> Result<Tensor> {
    if step == 0 {
        return Err(Error::value(
            "arange",
            format!("step must be nonzero, got start={start}, end={end}, step={step}"),
        ));
    }
    let (span, step128) = (end as i128 - start as i128, step as i128);
    let n = if (span > 0) == (step128 > 0) && span != 0 {
        (span + step128 - step128.signum()) / step128
    } else {
        0
    };
    if n > (isize::MAX / 8) as i128 {
        return Err(Error::Alloc {
            op: "arange",
            bytes: n as u128 * 8,
        });
    }
    let mut v = try_alloc("arange", 0, 0i64)?;
    v.try_reserve_exact(n as usize).map_err(|_| Error::Alloc {
        op: "arange",
        bytes: n as u128 * 8,
    })?;
    // Every value lies between start and end, so it fits; i·step may not, hence i128.
    v.extend((0..n).map(|i| (start as i128 + i * step128) as i64));
    Tensor::from_vec(v, &[n as usize])?.to_dtype(dtype)
}

pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType) -> Result<Tensor> {
    let last = steps.saturating_sub(1).max(1) as f64;
    fill("linspace", &[steps], dtype, |i| {
        if steps == 1 {
            start
        } else {
            start + (end - start) * i as f64 / last
        }
    })
}

pub fn eye(n: usize, m: usize, dtype: DType) -> Result<Tensor> {
    let w = m.max(1);
    fill("eye", &[n, m], dtype, |k| {
        if k / w == k % w {
            1.0
        } else {
            0.0
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            arange(0.0, 1.0, 0.25, DType::F64)
                .unwrap()
                .to_vec_f64()
                .unwrap(),
            vec![0., 0.25, 0.5, 0.75]
        );
        assert_eq!(
            linspace(0.0, 1.0, 3, DType::F64)
                .unwrap()
                .to_vec_f64()
                .unwrap(),
            vec![0., 0.5, 1.0]
        );
        assert_eq!(
            eye(2, 3, DType::F64).unwrap().to_vec_f64().unwrap(),
            vec![1., 0., 0., 0., 1., 0.]
        );
        assert!(arange(0.0, 1.0, 0.0, DType::F64).is_err());
        let big = arange_int(i64::MAX - 2, i64::MAX, 1, DType::I64).unwrap();
        assert_eq!(
            big.as_slice::<i64>().unwrap(),
            &[i64::MAX - 2, i64::MAX - 1]
        );
        let down = arange_int(5, -2, -3, DType::I64).unwrap();
        assert_eq!(down.as_slice::<i64>().unwrap(), &[5, 2, -1]);
        assert_eq!(arange_int(0, 5, -1, DType::I64).unwrap().numel(), 0);
        assert!(arange_int(0, 5, 0, DType::I64).is_err());
        let wide = arange_int(i64::MIN, i64::MAX, 1 << 62, DType::I64).unwrap();
        // -2**63 + 3·2**62 = 2**62: i·step overflows i64 on the way, the value does not.
        assert_eq!(wide.numel(), 4);
        assert_eq!(wide.as_slice::<i64>().unwrap()[3], 1i64 << 62);
    }
}
