//! Every option the derive takes, on one item and its target.

use mantle_store::{Id, Item, Json, OnDelete, Registry, Timestamp};

#[derive(Item)]
#[item(name = "person")]
pub struct Person {
    pub name: String,
}

#[derive(Item)]
#[item(name = "note", version = 3, index(author, created), index(created, r#type))]
pub struct Note {
    #[item(index)]
    pub title: String,
    #[item(on_delete = "cascade")]
    pub author: Id<Person>,
    #[item(on_delete = "nullify", index)]
    pub editor: Option<Id<Person>>,
    #[item(on_delete = "forbid")]
    pub reviewer: Id<Person>,
    pub created: Timestamp,
    pub r#type: i64,
    pub tags: Json<Vec<String>>,
    pub body: Vec<u8>,
}

fn main() {
    assert_eq!(Note::TYPE_NAME, "note");
    assert_eq!(Note::VERSION, 3);
    assert_eq!(Person::VERSION, 1);
    let names: Vec<_> = Note::attributes().iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        ["title", "author", "editor", "reviewer", "created", "type", "tags", "body"]
    );
    assert_eq!(
        Note::indexes(),
        vec![vec!["author", "created"], vec!["created", "type"]]
    );
    // Raw identifiers are stored, and named in constants, without `r#`.
    let _ = (Note::TITLE, Note::AUTHOR, Note::TYPE, Note::TAGS);
    let _ = OnDelete::Cascade;
    // Registering checks the names the indexes use.
    let mut registry = Registry::new();
    registry.register::<Person>();
    registry.register::<Note>();
}
