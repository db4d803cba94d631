//! Typed queries: attributes, filters, ordering, and the query builder.
//!
//! Filters compile to SQL over the type's own table, so SQLite's indexes and
//! planner do the work; application code never writes SQL.

use std::marker::PhantomData;
use std::ops::ControlFlow;

use rusqlite::types::Value;

use crate::item::{Decoder, Item, Stored};
use crate::schema::is_missing_table;
use crate::tx::ReadTx;
use crate::value::{Attribute, Id, Operand};
use crate::{Error, Result};

/// A typed handle on attribute of item type `T` holding values of type `V`.
/// `#[derive(Item)]` makes one per field as an associated constant
/// (`Note::TITLE` for the field `title`).
pub struct Attr<T, V> {
    name: &'static str,
    _types: PhantomData<fn() -> (T, V)>,
}

impl<T, V> Clone for Attr<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, V> Copy for Attr<T, V> {}

impl<T, V> std::fmt::Debug for Attr<T, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attr({})", self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone)]
enum Expr {
    Cmp(&'static str, Op, Value),
    In(&'static str, Vec<Value>),
    Like(&'static str, String),
    Null(&'static str, bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A value that could not be encoded; reported when the query runs.
    Invalid(String),
}

impl Expr {
    fn write(&self, sql: &mut String, params: &mut Vec<Value>) -> Result<()> {
        match self {
            Expr::Cmp(col, op, v) => {
                params.push(v.clone());
                // `IS NOT` rather than `<>`: a `None` attribute differs from
                // every value.
                let op = if *op == Op::Ne { "IS NOT" } else { op.sql() };
                sql.push_str(&format!("\"{col}\" {op} ?{}", params.len()));
            }
            Expr::In(col, vs) => {
                if vs.is_empty() {
                    sql.push('0');
                    return Ok(());
                }
                sql.push_str(&format!("\"{col}\" IN ("));
                for (i, v) in vs.iter().enumerate() {
                    params.push(v.clone());
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("?{}", params.len()));
                }
                sql.push(')');
            }
            Expr::Like(col, pat) => {
                params.push(Value::Text(pat.clone()));
                sql.push_str(&format!("\"{col}\" LIKE ?{} ESCAPE '\\'", params.len()));
            }
            Expr::Null(col, is_null) => {
                sql.push_str(&format!(
                    "\"{col}\" IS {}NULL",
                    if *is_null { "" } else { "NOT " }
                ));
            }
            Expr::And(es) | Expr::Or(es) => {
                let (joiner, empty) = if matches!(self, Expr::And(_)) {
                    (" AND ", "1")
                } else {
                    (" OR ", "0")
                };
                if es.is_empty() {
                    sql.push_str(empty);
                }
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(joiner);
                    }
                    sql.push('(');
                    e.write(sql, params)?;
                    sql.push(')');
                }
            }
            Expr::Not(e) => {
                // `NOT x` is NULL when x is NULL (a `None` attribute), which
                // would drop the item from both `f` and `!f`; `IS NOT 1`
                // keeps the two complementary.
                sql.push('(');
                e.write(sql, params)?;
                sql.push_str(") IS NOT 1");
            }
            Expr::Invalid(reason) => {
                return Err(Error::Encode {
                    what: "filter value",
                    reason: reason.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A condition on items of type `T`. Combine with [`and`](Filter::and),
/// [`or`](Filter::or) and `!`.
///
/// ```
/// # use mantle_store::{Item};
/// # #[derive(Item)] #[item(name = "n", version = 1)] struct N { a: i64, b: String }
/// let f = N::A.gt(3).and(N::B.like("x%")).or(!N::A.is_in([1, 2]));
/// # let _ = f;
/// ```
pub struct Filter<T> {
    expr: Expr,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Self::new(self.expr.clone())
    }
}

impl<T> std::fmt::Debug for Filter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}

impl<T> Filter<T> {
    fn new(expr: Expr) -> Self {
        Self {
            expr,
            _type: PhantomData,
        }
    }
    /// Every item.
    pub fn all() -> Self {
        Self::new(Expr::And(Vec::new()))
    }
    /// Both conditions.
    pub fn and(self, other: Filter<T>) -> Self {
        match self.expr {
            Expr::And(mut es) => {
                es.push(other.expr);
                Self::new(Expr::And(es))
            }
            e => Self::new(Expr::And(vec![e, other.expr])),
        }
    }
    /// Either condition.
    pub fn or(self, other: Filter<T>) -> Self {
        match self.expr {
            Expr::Or(mut es) => {
                es.push(other.expr);
                Self::new(Expr::Or(es))
            }
            e => Self::new(Expr::Or(vec![e, other.expr])),
        }
    }
    /// Items whose id is one of `ids`.
    pub fn ids(ids: impl IntoIterator<Item = Id<T>>) -> Self {
        Self::new(Expr::In(
            "_id",
            ids.into_iter().map(|i| Value::Integer(i.raw())).collect(),
        ))
    }
    /// Items whose attribute `name` equals `value`, given as JSON: for
    /// filters that arrive by name over the network (a query string).
    /// `None` if `T` has no such attribute or `value` does not fit its
    /// kind (a number for an integer column, a string for text, …); bytes
    /// attributes cannot be compared this way.
    ///
    /// ```
    /// # use mantle_store::{Filter, Item};
    /// # #[derive(Item)] #[item(name = "n", version = 1)] struct N { a: i64, b: String }
    /// assert!(Filter::<N>::attribute_eq("a", &serde_json::json!(3)).is_some());
    /// assert!(Filter::<N>::attribute_eq("a", &serde_json::json!("three")).is_none());
    /// assert!(Filter::<N>::attribute_eq("c", &serde_json::json!(3)).is_none());
    /// ```
    pub fn attribute_eq(name: &str, value: &serde_json::Value) -> Option<Self>
    where
        T: crate::Item,
    {
        use crate::value::Kind;
        use serde_json::Value as J;
        let attr = T::attributes().into_iter().find(|a| a.name == name)?;
        let v = match (attr.kind, value) {
            (_, J::Null) if attr.nullable => return Some(Self::new(Expr::Null(attr.name, true))),
            (Kind::Integer | Kind::Timestamp | Kind::Reference(_), J::Number(n)) => {
                Value::Integer(n.as_i64()?)
            }
            (Kind::Float, J::Number(n)) => Value::Real(n.as_f64()?),
            (Kind::Bool, J::Bool(b)) => Value::Integer(i64::from(*b)),
            (Kind::Text, J::String(s)) => Value::Text(s.clone()),
            (Kind::Json, v) => Value::Text(v.to_string()),
            _ => return None,
        };
        Some(Self::new(Expr::Cmp(attr.name, Op::Eq, v)))
    }
    pub(crate) fn to_sql(&self, params: &mut Vec<Value>) -> Result<String> {
        let mut sql = String::new();
        self.expr.write(&mut sql, params)?;
        Ok(sql)
    }
}

impl<T> std::ops::Not for Filter<T> {
    type Output = Filter<T>;
    fn not(self) -> Filter<T> {
        Filter::new(Expr::Not(Box::new(self.expr)))
    }
}

/// A sort key for items of type `T`.
#[derive(Debug)]
pub struct Order<T> {
    column: &'static str,
    descending: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Order<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Order<T> {}

impl<T> Order<T> {
    /// Ascending by id: insertion order.
    pub fn by_id() -> Self {
        Order {
            column: "_id",
            descending: false,
            _type: PhantomData,
        }
    }
}

/// A new value for one attribute, for [`Tx::update_where`](crate::Tx::update_where).
#[derive(Debug)]
pub struct Assignment<T> {
    pub(crate) column: &'static str,
    pub(crate) value: Result<Value, String>,
    _type: PhantomData<fn() -> T>,
}

impl<T, V> Attr<T, V> {
    /// Used by `#[derive(Item)]`.
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _types: PhantomData,
        }
    }
    /// The attribute's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    fn cmp<O: Operand<V>>(self, op: Op, v: O) -> Filter<T> {
        Filter::new(match v.into_value() {
            // `= NULL` is never true in SQL; mean what the caller meant.
            Ok(Value::Null) if op == Op::Eq => Expr::Null(self.name, true),
            Ok(Value::Null) if op == Op::Ne => Expr::Null(self.name, false),
            Ok(value) => Expr::Cmp(self.name, op, value),
            Err(e) => Expr::Invalid(e.to_string()),
        })
    }
    /// Equal to `v`.
    pub fn eq<O: Operand<V>>(self, v: O) -> Filter<T> {
        self.cmp(Op::Eq, v)
    }
    /// Not equal to `v`.
    pub fn ne<O: Operand<V>>(self, v: O) -> Filter<T> {
        self.cmp(Op::Ne, v)
    }
    /// Less than `v`.
    pub fn lt<O: Operand<V>>(self, v: O) -> Filter<T> {
        self.cmp(Op::Lt, v)
    }
    /// Less than or equal to `v`.
    pub fn le<O: Operand<V>>(self, v: O) -> Filter<T> {
        self.cmp(Op::Le, v)
    }
    /// Greater than `v`.
    pub fn gt<O: Operand<V>>(self, v: O) -> Filter<T> {
        self.cmp(Op::Gt, v)
    }
    /// Greater than or equal to `v`.
    pub fn ge<O: Operand<V>>(self, v: O) -> Filter<T> {
        self.cmp(Op::Ge, v)
    }
    /// One of `vs`.
    pub fn is_in<O: Operand<V>>(self, vs: impl IntoIterator<Item = O>) -> Filter<T> {
        let values: Result<Vec<Value>> = vs.into_iter().map(Operand::into_value).collect();
        Filter::new(match values {
            Ok(vs) => Expr::In(self.name, vs),
            Err(e) => Expr::Invalid(e.to_string()),
        })
    }
    /// Matches a SQL LIKE pattern (`%` any run, `_` one character, `\` escapes).
    pub fn like(self, pattern: &str) -> Filter<T> {
        Filter::new(Expr::Like(self.name, pattern.to_owned()))
    }
    /// Ascending order.
    pub fn asc(self) -> Order<T> {
        Order {
            column: self.name,
            descending: false,
            _type: PhantomData,
        }
    }
    /// Descending order.
    pub fn desc(self) -> Order<T> {
        Order {
            column: self.name,
            descending: true,
            _type: PhantomData,
        }
    }
    /// Sets the attribute to `v` (for batch updates).
    pub fn set<O: Operand<V>>(self, v: O) -> Assignment<T> {
        Assignment {
            column: self.name,
            value: v.into_value().map_err(|e| e.to_string()),
            _type: PhantomData,
        }
    }
}

impl<T, A: Attribute> Attr<T, Option<A>> {
    /// Holds no value.
    pub fn is_none(self) -> Filter<T> {
        Filter::new(Expr::Null(self.name, true))
    }
    /// Holds a value.
    pub fn is_some(self) -> Filter<T> {
        Filter::new(Expr::Null(self.name, false))
    }
}

/// A query over items of type `T`, built from a transaction with
/// [`ReadTx::query`]. Nothing runs until a finishing method
/// ([`all`](Query::all), [`count`](Query::count), …) is called.
pub struct Query<'q, T> {
    tx: &'q ReadTx<'q>,
    filter: Option<Filter<T>>,
    order: Vec<Order<T>>,
    limit: Option<u64>,
    offset: u64,
}

impl<'q, T: Item> Query<'q, T> {
    pub(crate) fn new(tx: &'q ReadTx<'q>) -> Self {
        Self {
            tx,
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: 0,
        }
    }

    /// Keeps items matching `f` (several calls: all must match).
    pub fn filter(mut self, f: Filter<T>) -> Self {
        self.filter = Some(match self.filter {
            None => f,
            Some(prev) => prev.and(f),
        });
        self
    }
    /// Sorts by `o` after any earlier sort keys.
    pub fn order_by(mut self, o: Order<T>) -> Self {
        self.order.push(o);
        self
    }
    /// At most `n` items.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// Skips the first `n` items.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = n;
        self
    }

    fn where_clause(&self, params: &mut Vec<Value>) -> Result<String> {
        match &self.filter {
            None => Ok(String::new()),
            Some(f) => Ok(format!(" WHERE {}", f.to_sql(params)?)),
        }
    }

    fn tail(&self, sql: &mut String) {
        if !self.order.is_empty() {
            sql.push_str(" ORDER BY ");
            let keys: Vec<String> = self
                .order
                .iter()
                .map(|o| {
                    format!(
                        "\"{}\" {}",
                        o.column,
                        if o.descending { "DESC" } else { "ASC" }
                    )
                })
                .collect();
            sql.push_str(&keys.join(", "));
            // Ties break by id so results (and paging) are deterministic.
            sql.push_str(", _id");
        }
        if self.limit.is_some() || self.offset > 0 {
            let limit = self
                .limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
            sql.push_str(&format!(" LIMIT {limit} OFFSET {}", self.offset));
        }
    }

    /// Calls `f` with each matching item in order, streaming from SQLite
    /// (large results are never held in memory at once). `f` can stop early
    /// by returning `ControlFlow::Break`.
    pub fn for_each(self, mut f: impl FnMut(Stored<T>) -> Result<ControlFlow<()>>) -> Result<()> {
        let info = self.tx.registry.info::<T>()?;
        let mut params = Vec::new();
        let mut sql = format!("{}{}", info.sql.select, self.where_clause(&mut params)?);
        self.tail(&mut sql);
        let mut stmt = match self.tx.conn.prepare_cached(&sql) {
            Ok(s) => s,
            Err(e) if is_missing_table(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let item = decode_stored::<T>(row)?;
            if f(item)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// All matching items.
    pub fn all(self) -> Result<Vec<Stored<T>>> {
        let mut out = Vec::new();
        self.for_each(|item| {
            out.push(item);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The first matching item.
    pub fn first(self) -> Result<Option<Stored<T>>> {
        let mut out = None;
        self.limit(1).for_each(|item| {
            out = Some(item);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(out)
    }

    /// The one matching item, `None` if there is none, or
    /// [`Error::NotUnique`] if there are several.
    pub fn unique(self) -> Result<Option<Stored<T>>> {
        let mut found = self.limit(2).all()?;
        match found.len() {
            0 | 1 => Ok(found.pop()),
            _ => Err(Error::NotUnique {
                type_name: T::TYPE_NAME,
                count: found.len() as i64,
            }),
        }
    }

    /// The ids of matching items.
    pub fn ids(self) -> Result<Vec<Id<T>>> {
        let mut params = Vec::new();
        let info = self.tx.registry.info::<T>()?;
        let mut sql = format!(
            "SELECT _id FROM \"{}\"{}",
            info.sql.table,
            self.where_clause(&mut params)?
        );
        self.tail(&mut sql);
        let mut stmt = match self.tx.conn.prepare_cached(&sql) {
            Ok(s) => s,
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let ids = stmt
            .query_map(rusqlite::params_from_iter(params), |r| r.get(0))?
            .map(|r| r.map(Id::from_raw))
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    fn aggregate(self, expr: &str) -> Result<Value> {
        let info = self.tx.registry.info::<T>()?;
        let mut params = Vec::new();
        let mut inner = format!(
            "SELECT * FROM \"{}\"{}",
            info.sql.table,
            self.where_clause(&mut params)?
        );
        self.tail(&mut inner);
        let sql = format!("SELECT {expr} FROM ({inner})");
        match self
            .tx
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(params), |r| r.get(0)))
        {
            Ok(v) => Ok(v),
            Err(e) if is_missing_table(&e) => Ok(Value::Null),
            Err(e) => Err(e.into()),
        }
    }

    /// How many items match.
    pub fn count(self) -> Result<u64> {
        match self.aggregate("count(*)")? {
            Value::Integer(n) => Ok(n as u64),
            _ => Ok(0),
        }
    }

    /// Whether any item matches.
    pub fn exists(self) -> Result<bool> {
        Ok(self.limit(1).count()? > 0)
    }

    /// The sum of a numeric attribute over matching items (0 when none).
    pub fn sum<V: Summable>(self, attr: Attr<T, V>) -> Result<V::Total> {
        let v = self.aggregate(&format!("sum(\"{}\")", attr.name))?;
        Ok(V::total(v))
    }
}

/// Attribute types that [`Query::sum`] can add up.
pub trait Summable {
    /// The type of the sum.
    type Total;
    #[doc(hidden)]
    fn total(v: Value) -> Self::Total;
}

macro_rules! summable_int {
    ($($t:ty),*) => {$(
        impl Summable for $t {
            type Total = i64;
            fn total(v: Value) -> i64 {
                match v { Value::Integer(i) => i, Value::Real(f) => f as i64, _ => 0 }
            }
        }
        impl Summable for Option<$t> {
            type Total = i64;
            fn total(v: Value) -> i64 { <$t>::total(v) }
        }
    )*};
}
summable_int!(i64, i32, u32, i16, u16, u8);

impl Summable for f64 {
    type Total = f64;
    fn total(v: Value) -> f64 {
        match v {
            Value::Integer(i) => i as f64,
            Value::Real(f) => f,
            _ => 0.0,
        }
    }
}
impl Summable for Option<f64> {
    type Total = f64;
    fn total(v: Value) -> f64 {
        f64::total(v)
    }
}

/// Decodes `_id, _rev, attributes…` into a stored item.
pub(crate) fn decode_stored<T: Item>(row: &rusqlite::Row<'_>) -> Result<Stored<T>> {
    let id: i64 = row.get(0)?;
    let revision: i64 = row.get(1)?;
    let value = T::decode(&mut Decoder {
        row,
        next: 2,
        type_name: T::TYPE_NAME,
    })?;
    Ok(Stored {
        id: Id::from_raw(id),
        revision,
        value,
    })
}
