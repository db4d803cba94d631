//! Referenceables: server objects a connection holds by handle.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use mantle_live::{Arg, Command, RemoteError};

use crate::Caller;
use crate::commands::{CommandTable, Failure, Fields};

/// The commands that can be called on a handle to a `T`.
///
/// ```
/// use std::sync::Arc;
/// use mantle_live::{Command, Empty, NoError, arguments};
/// use mantle_live_server::{Failure, ObjectCommands};
///
/// arguments! { pub struct Count { pub n: i64 } }
/// pub struct Get;
/// impl Command for Get {
///     const NAME: &'static str = "Get";
///     type Args = Empty;
///     type Answer = Count;
///     type Error = NoError;
/// }
/// struct Counter(i64);
/// let commands = ObjectCommands::<Counter>::new()
///     .command::<Get, _, _>(|_caller, counter, _args| async move {
///         Ok::<_, Failure<NoError>>(Count { n: counter.0 })
///     });
/// # let _ = Arc::new(commands);
/// ```
pub struct ObjectCommands<T> {
    table: CommandTable<(Caller, Arc<T>)>,
}

impl<T: Send + Sync + 'static> Default for ObjectCommands<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + Sync + 'static> ObjectCommands<T> {
    /// No commands yet.
    pub fn new() -> Self {
        Self {
            table: CommandTable::default(),
        }
    }

    /// Adds the handler of `C` on objects of type `T`.
    pub fn command<C, F, Fut>(mut self, f: F) -> Self
    where
        C: Command,
        F: Fn(Caller, Arc<T>, C::Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Answer, Failure<C::Error>>> + Send + 'static,
    {
        self.table
            .add::<C, _, _>(move |(caller, obj): (Caller, Arc<T>), args| f(caller, obj, args));
        self
    }
}

/// A published object, type erased.
pub(crate) trait RemoteObject: Send + Sync {
    /// The argument schema of command `name`, if the object has it.
    fn args_of(&self, name: &str) -> Option<&'static [Arg]>;
    /// Calls command `name` (known to exist).
    fn call(
        &self,
        caller: Caller,
        name: &str,
        args: Fields,
    ) -> BoxFuture<'static, Result<Fields, RemoteError>>;
    /// The answer schema of command `name`.
    fn answer_of(&self, name: &str) -> Option<&'static [Arg]>;
}

pub(crate) struct Published<T> {
    pub obj: Arc<T>,
    pub commands: Arc<ObjectCommands<T>>,
}

impl<T: Send + Sync + 'static> RemoteObject for Published<T> {
    fn args_of(&self, name: &str) -> Option<&'static [Arg]> {
        self.commands.table.get(name).map(|e| e.args)
    }
    fn answer_of(&self, name: &str) -> Option<&'static [Arg]> {
        self.commands.table.get(name).map(|e| e.answer)
    }
    fn call(
        &self,
        caller: Caller,
        name: &str,
        args: Fields,
    ) -> BoxFuture<'static, Result<Fields, RemoteError>> {
        let entry = self
            .commands
            .table
            .get(name)
            .expect("args_of was checked first");
        (entry.handler)((caller, self.obj.clone()), args)
    }
}
