//! Command tables: typed handlers stored behind one dynamic signature.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use mantle_live::{Arg, Arguments, Command, CommandError, RemoteError, codes};
use serde_json::{Map, Value};

/// What a handler fails with: one of its command's typed errors, or an
/// unexpected failure (answered with AMP's `UNKNOWN` and logged).
///
/// In a handler, `?` works on both kinds of error: on the command's own
/// error type `E` directly (through `From<E>`), and on anything else that
/// can be displayed (a [`mantle_store::Error`], a
/// [`SiteError`](mantle_site::SiteError), …) after [`OrFail::or_fail`],
/// which makes it [`Failure::Internal`]. (A `From<mantle_store::Error>`
/// impl is not possible beside `From<E>`: `E` could be that very type.)
#[derive(Debug)]
pub enum Failure<E> {
    /// A typed error, sent to the caller as it is.
    Command(E),
    /// Anything else (a store error, say).
    Internal(String),
    /// A shared item the caller may not use for this, or that does not
    /// exist (one answer for both): code `NOT_FOUND`.
    NotFound(String),
}

impl<E> Failure<E> {
    /// An unexpected failure, described by `e`.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Failure::Internal(e.to_string())
    }
}

impl<E: CommandError> Failure<E> {
    /// The wire form, for command `command`.
    pub(crate) fn into_remote(self, command: &str) -> RemoteError {
        match self {
            Failure::Command(e) => RemoteError::from_typed(&e),
            Failure::Internal(why) => failed(command, why),
            Failure::NotFound(why) => RemoteError::new(codes::NOT_FOUND, why),
        }
    }
}

impl<E> From<E> for Failure<E> {
    fn from(e: E) -> Self {
        Failure::Command(e)
    }
}

/// `?` in a live handler for errors that are not the command's own: they
/// become [`Failure::Internal`], which the caller gets as `UNKNOWN` (its
/// description is `COMMAND failed: ERROR`) and the server logs as a
/// warning with the command's name.
///
/// ```no_run
/// use mantle_live::{Empty, NoError, arguments, command};
/// use mantle_live_server::{Live, OrFail};
///
/// arguments! {
///     pub struct CountAnswer { pub notes: u64 }
/// }
/// command!(pub CountNotes, Empty, CountAnswer, NoError);
///
/// #[derive(mantle_store::Item, Debug, Clone)]
/// #[item(name = "doc_note", version = 1)]
/// pub struct Note { pub text: String }
///
/// fn declare(live: &mut Live) {
///     live.command::<CountNotes, _, _>(|caller, _args| async move {
///         // A `mantle_site::SiteError`, then a `mantle_store::Error`.
///         let store = caller.store().await.or_fail()?;
///         let notes = store.read(|r| r.query::<Note>().count()).await.or_fail()?;
///         Ok(CountAnswer { notes })
///     });
/// }
/// ```
///
/// A typed error needs nothing: `?` on a `Result<_, E>`, with `E` the
/// command's error type, answers with it. To answer a store's revision
/// conflict as the typed `SAVE_CONFLICT` rather than `UNKNOWN`, map it
/// first with [`save_conflict`](crate::save_conflict).
pub trait OrFail<T> {
    /// The error, if any, as an unexpected failure of the handler.
    fn or_fail<E>(self) -> Result<T, Failure<E>>;
}

impl<T, X: std::fmt::Display> OrFail<T> for Result<T, X> {
    fn or_fail<E>(self) -> Result<T, Failure<E>> {
        self.map_err(Failure::internal)
    }
}

pub(crate) type Fields = Map<String, Value>;
type Handler<Ctx> =
    Arc<dyn Fn(Ctx, Fields) -> BoxFuture<'static, Result<Fields, RemoteError>> + Send + Sync>;

/// One command's schemas and handler.
pub(crate) struct Entry<Ctx> {
    pub args: &'static [Arg],
    pub answer: &'static [Arg],
    pub handler: Handler<Ctx>,
}

impl<Ctx> Clone for Entry<Ctx> {
    fn clone(&self) -> Self {
        Self {
            args: self.args,
            answer: self.answer,
            handler: self.handler.clone(),
        }
    }
}

/// Commands by wire name, each handled with a context `Ctx`.
pub(crate) struct CommandTable<Ctx> {
    entries: HashMap<&'static str, Entry<Ctx>>,
}

impl<Ctx> Default for CommandTable<Ctx> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<Ctx: Send + 'static> CommandTable<Ctx> {
    /// Adds (or replaces) the handler of `C`.
    pub fn add<C, F, Fut>(&mut self, f: F)
    where
        C: Command,
        F: Fn(Ctx, C::Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Answer, Failure<C::Error>>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: Handler<Ctx> = Arc::new(move |ctx, fields| {
            let args = match decode::<C::Args>(fields) {
                Ok(a) => a,
                Err(e) => return futures::future::ready(Err(e)).boxed(),
            };
            let fut = f(ctx, args);
            async move { answer::<C>(C::NAME, fut.await) }.boxed()
        });
        self.entries.insert(
            C::NAME,
            Entry {
                args: C::Args::schema(),
                answer: C::Answer::schema(),
                handler,
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&Entry<Ctx>> {
        self.entries.get(name)
    }
}

/// Fields (already checked against `A`'s schema) as `A`.
pub(crate) fn decode<A: Arguments>(fields: Fields) -> Result<A, RemoteError> {
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| RemoteError::new(codes::BAD_ARGUMENTS, e.to_string()))
}

/// A handler's result in wire form.
pub(crate) fn answer<C: Command>(
    name: &str,
    result: Result<C::Answer, Failure<C::Error>>,
) -> Result<Fields, RemoteError> {
    match result {
        Ok(answer) => match serde_json::to_value(answer) {
            Ok(Value::Object(fields)) => Ok(fields),
            other => Err(failed(name, format!("answer is not an object: {other:?}"))),
        },
        Err(f) => Err(f.into_remote(name)),
    }
}

/// `UNKNOWN` (Twisted's code for a failed handler), logged here with the
/// detail; the caller learns which command failed and why.
pub(crate) fn failed(command: &str, why: String) -> RemoteError {
    tracing::warn!(command, %why, "live command failed");
    RemoteError::new(codes::UNKNOWN, format!("{command} failed: {why}"))
}
