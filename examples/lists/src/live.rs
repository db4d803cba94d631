//! The lists over live connections: the commands, and the `list` models.
//!
//! A list is opened as a handle to a [`SharedItem`] (the caller's own
//! lists too: the owner holds every access on her shares), so each entry
//! command is checked by the sharing layer in the owner's transaction that
//! runs it. The model kind [`MODEL_KIND`] is a shared model: `list:OWNER/NAME`
//! may be observed by whoever the list's shares let read it, and the
//! observation ends (`NOT_FOUND`) when that share is withdrawn.

use std::sync::Arc;

use mantle_live::{CommandError, Empty, Handle, arguments, command};
use mantle_live_server::{Caller, Failure, Live, ObjectCommands, OrFail, SharedItem};
use mantle_site::sharing::EDIT;
use mantle_site::{Account, SiteError};
use mantle_store::Id;
use serde::{Deserialize, Serialize};

use crate::entries::{self, EntryError};
use crate::items::{List, check_name};
use crate::share::{self, ListAccess, MyList, ShareError, ShareFailure, SharedList};
use crate::{APP, MODEL_KIND};

arguments! {
    /// `OpenList` arguments.
    pub struct OpenListArgs {
        /// The owner's login (or `account:ID`); the caller's own list if
        /// left out.
        pub owner: Option<String>,
        /// The list's name.
        pub name: String,
    }
    /// `OpenList` answer: a handle to the list, and the model to observe.
    pub struct OpenListAnswer {
        /// The list, to call `AddEntry`, `EditEntry` and `RemoveEntry` on.
        pub handle: Handle,
        /// The model to `Observe` for its entries (`list:OWNER/NAME`).
        pub model: String,
        /// The owner's primary login.
        pub owner: String,
        /// Whether the caller may change the entries (when it opened: each
        /// call checks again).
        pub edit: bool,
    }
    /// `AddEntry` arguments.
    pub struct AddEntryArgs {
        /// What the new entry says.
        pub text: String,
    }
    /// `AddEntry` answer.
    pub struct AddEntryAnswer {
        /// The new entry's id, for editing or removing it.
        pub id: i64,
        /// Its first revision, for the first edit to name.
        pub revision: i64,
    }
    /// `EditEntry` arguments: the revision the edit was made against.
    pub struct EditEntryArgs {
        /// The entry to change.
        pub id: i64,
        /// What it says from now on.
        pub text: String,
        /// The entry's revision the edit was made against.
        pub revision: i64,
    }
    /// `EditEntry` answer: the entry's new revision.
    pub struct EditEntryAnswer {
        /// The entry's revision after the edit.
        pub revision: i64,
    }
    /// `RemoveEntry` arguments: the revision the removal was decided on.
    pub struct RemoveEntryArgs {
        /// The entry to remove.
        pub id: i64,
        /// The entry's revision the removal was decided on.
        pub revision: i64,
    }
    /// `ShareList` arguments.
    pub struct ShareListArgs {
        /// One of the caller's lists.
        pub name: String,
        /// A login, or `everyone` (anonymous visitors included).
        pub with: String,
        /// `read` or `edit` (everyone reads only).
        pub access: String,
    }
    /// `UnshareList` arguments.
    pub struct UnshareListArgs {
        /// One of the caller's lists.
        pub name: String,
        /// The login, or `everyone`, it was shared with.
        pub with: String,
    }
    /// `UnshareList` answer.
    pub struct UnshareListAnswer {
        /// Whether there was such a share.
        pub removed: bool,
    }
    /// `MyLists` answer.
    pub struct MyListsAnswer {
        /// The caller's lists by name, with their shares.
        pub lists: Vec<MyList>,
    }
    /// `SharedLists` answer.
    pub struct SharedListsAnswer {
        /// The lists other users share with the caller.
        pub lists: Vec<SharedList>,
    }
}

/// Why a list cannot be opened (besides `NOT_FOUND`: no such list
/// available to the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum OpenListError {
    /// The name cannot name a list.
    #[serde(rename = "BAD_NAME")]
    #[error("bad list name: {reason}")]
    BadName {
        /// What is wrong with it.
        reason: String,
    },
    /// The caller's name for a new list already names something else of
    /// hers that she shares.
    #[serde(rename = "NAME_TAKEN")]
    #[error("{name:?} already names something else you share")]
    NameTaken {
        /// The name.
        name: String,
    },
}
impl CommandError for OpenListError {}

command!(
    /// Opens a list: another user's that the caller may read, or the
    /// caller's own (made on first opening). Answers a handle for the
    /// entry commands and the model name to observe; `NOT_FOUND` if no
    /// such list is available to the caller.
    pub OpenList, OpenListArgs, OpenListAnswer, OpenListError
);
command!(
    /// On a list handle (needs edit access): adds an entry at the end.
    pub AddEntry, AddEntryArgs, AddEntryAnswer, EntryError
);
command!(
    /// On a list handle (needs edit access): changes an entry's text, if
    /// it is still at the given revision.
    pub EditEntry, EditEntryArgs, EditEntryAnswer, EntryError
);
command!(
    /// On a list handle (needs edit access): removes an entry, if it is
    /// still at the given revision.
    pub RemoveEntry, RemoveEntryArgs, Empty, EntryError
);
command!(
    /// Shares one of the caller's lists with a user (`read` or `edit`),
    /// or publishes it to everyone (`read`).
    pub ShareList, ShareListArgs, Empty, ShareError
);
command!(
    /// Withdraws a share of one of the caller's lists: whoever it reached
    /// loses the list at once.
    pub UnshareList, UnshareListArgs, UnshareListAnswer, ShareError
);
command!(
    /// The caller's lists, with their shares.
    pub MyLists, Empty, MyListsAnswer, ShareError
);
command!(
    /// The lists other users share with the caller.
    pub SharedLists, Empty, SharedListsAnswer, ShareError
);

/// The entry commands, on handles to shared lists: each runs in the
/// owner's transaction if the caller holds edit access then.
fn list_commands() -> ObjectCommands<SharedItem> {
    ObjectCommands::<SharedItem>::new()
        .on_share::<AddEntry, _>(EDIT, |tx, grant, args| {
            let list = grant.item::<List>().or_fail()?;
            let e = entries::add_in(tx, list, &args.text)?;
            Ok(AddEntryAnswer {
                id: e.id,
                revision: e.revision,
            })
        })
        .on_share::<EditEntry, _>(EDIT, |tx, grant, args| {
            let list = grant.item::<List>().or_fail()?;
            let e = entries::edit_in(tx, list, args.id, &args.text, args.revision)?;
            Ok(EditEntryAnswer {
                revision: e.revision,
            })
        })
        .on_share::<RemoveEntry, _>(EDIT, |tx, grant, args| {
            let list = grant.item::<List>().or_fail()?;
            entries::remove_in(tx, list, args.id, args.revision)?;
            Ok(Empty {})
        })
}

/// Refuses (`NOT_FOUND`, as a missing list) a caller who was not given
/// the lists, for what would touch their own store.
async fn given<E>(caller: &Caller) -> Result<Id<Account>, Failure<E>> {
    let me = caller.avatar().account;
    if caller.site().products().holds(me, APP).await.or_fail()? {
        Ok(me)
    } else {
        Err(Failure::NotFound("you were not given the lists".into()))
    }
}

/// `OpenList`: makes the caller's own list on first opening, then opens
/// it (or another's) through the sharing layer.
async fn open_list(
    caller: Caller,
    args: OpenListArgs,
    commands: Arc<ObjectCommands<SharedItem>>,
) -> Result<OpenListAnswer, Failure<OpenListError>> {
    check_name(&args.name).map_err(|reason| OpenListError::BadName { reason })?;
    let site = caller.site().clone();
    let owner_login = args
        .owner
        .clone()
        .unwrap_or_else(|| caller.username().to_string());
    // Worded as the sharing layer's own refusal: whatever the reason, the
    // caller gets the same answer.
    let missing = || Failure::NotFound(format!("no share {:?} is available to you", args.name));
    let me = caller.avatar().account;
    let mine = site.sharing().owner(&owner_login).await == Some(me);
    if mine {
        given::<OpenListError>(&caller).await?;
    }
    let item = match caller.open_shared(&owner_login, &args.name).await {
        Ok(item) => item,
        // Her own list, opened for the first time: made now.
        Err(Failure::NotFound(_)) if mine => {
            match share::create(&site, me, &args.name).await {
                Ok(_) => {}
                Err(SiteError::ShareIdTaken(name)) => {
                    return Err(OpenListError::NameTaken { name }.into());
                }
                Err(e) => return Err(Failure::internal(e)),
            }
            caller.open_shared(&owner_login, &args.name).await?
        }
        Err(e) => return Err(e),
    };
    if item.item::<List>().is_none() {
        // A share of something else under that name.
        return Err(if mine {
            OpenListError::NameTaken { name: args.name }.into()
        } else {
            missing()
        });
    }
    let owner = site.accounts().by_id(item.owner).await.or_fail()?.primary;
    let edit = item.grant.access.permits(EDIT);
    let model = format!("{MODEL_KIND}:{owner}/{}", args.name);
    let handle = caller.publish(Arc::new(item), commands)?;
    Ok(OpenListAnswer {
        handle,
        model,
        owner,
        edit,
    })
}

/// Adds the lists to the live layer: the commands and the `list` models.
pub(crate) fn declare(live: &mut Live) {
    let commands = Arc::new(list_commands());
    live.command::<OpenList, _, _>(move |caller, args| open_list(caller, args, commands.clone()));
    live.command::<ShareList, _, _>(|caller, args| async move {
        let me = given::<ShareError>(&caller).await?;
        let access = ListAccess::parse(&args.access)?;
        share::share(caller.site(), me, &args.name, &args.with, access).await?;
        Ok(Empty {})
    });
    live.command::<UnshareList, _, _>(|caller, args| async move {
        let me = given::<ShareError>(&caller).await?;
        let removed = share::unshare(caller.site(), me, &args.name, &args.with).await?;
        Ok(UnshareListAnswer { removed })
    });
    live.command::<MyLists, _, _>(|caller, _| async move {
        let me = caller.avatar().account;
        let lists = share::my_lists(caller.site(), me)
            .await
            .map_err(ShareFailure::from)?;
        Ok(MyListsAnswer { lists })
    });
    live.command::<SharedLists, _, _>(|caller, _| async move {
        let me = caller.avatar().account;
        let lists = share::shared_lists(caller.site(), me)
            .await
            .map_err(ShareFailure::from)?;
        Ok(SharedListsAnswer { lists })
    });
    live.shared_model::<List, _>(MODEL_KIND, entries::snapshot);
}
