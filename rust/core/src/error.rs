//! One typed error for the whole core; the binding maps each variant to a Python class.
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit the op (broadcast, matmul, reshape, cat, ...).
    Shape { op: &'static str, msg: String },
    /// A dim or index outside its range.
    Index { op: &'static str, msg: String },
    /// A bad argument value that is not about shapes.
    Value { op: &'static str, msg: String },
    /// A wrong kind of argument (dtype, type).
    Type { op: &'static str, msg: String },
    /// An allocation the machine cannot give.
    Alloc { op: &'static str, bytes: u128 },
    /// Autograd misuse: backward on something without grad, and so on.
    Grad { op: &'static str, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn index(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Index {
            op,
            msg: msg.into(),
        }
    }
    pub fn value(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Value {
            op,
            msg: msg.into(),
        }
    }
    pub fn type_(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Type {
            op,
            msg: msg.into(),
        }
    }
    pub fn grad(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Grad {
            op,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, msg }
            | Error::Index { op, msg }
            | Error::Value { op, msg }
            | Error::Type { op, msg }
            | Error::Grad { op, msg } => write!(f, "{op}: {msg}"),
            Error::Alloc { op, bytes } => {
                write!(f, "{op}: cannot allocate {bytes} bytes")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Formats a shape the way numpy prints it: (3, 4), (5,), ().
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}
