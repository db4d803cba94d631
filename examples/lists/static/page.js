// The live page of one list (served as /lists/page.js: the site's content
// security policy runs no inline scripts). The page says whose list it is
// and what the viewer may do (data-owner, data-list, data-edit,
// data-mine on #lists-page); the server checks every call anyway.
(function () {
  'use strict';
  const $ = (selector) => document.querySelector(selector);
  const root = $('#lists-page');
  const owner = root.dataset.owner;
  const name = root.dataset.list;
  const mine = root.dataset.mine === 'true';
  let canEdit = root.dataset.edit === 'true';
  const status = $('#status');
  const list = $('#entries');
  const message = $('#message');
  const newText = $('#new-text');

  const live = new MantleLive();
  const ref = live.reference('OpenList', {owner: owner, name: name});
  const entries = new Map(); // id -> {id, text, revision}
  let order = []; // ids, in list order
  const editing = new Map(); // id -> the revision the edit is made against
  const counts = {snapshots: 0, deltas: 0};
  let gone = false;
  // For tests and the curious.
  const page = {live: live, ref: ref, observation: null, counts: counts, entries: entries};
  window.listsPage = page;

  function say(text, kind) {
    message.textContent = text;
    message.dataset.kind = kind || 'info';
  }

  function describe(err) {
    if (err.code === 'CONNECTION_LOST') return 'offline, nothing was saved; try again when back online';
    return err.description || String(err);
  }

  // The list is no longer available (its share was withdrawn, or it never
  // was): say so, show nothing of it, stop asking for it.
  function unavailable() {
    if (gone) return;
    gone = true;
    canEdit = false;
    root.dataset.state = 'gone';
    status.textContent = 'unavailable';
    status.dataset.state = 'gone';
    const access = $('#access');
    if (access) access.textContent = '';
    entries.clear();
    order = [];
    editing.clear();
    const form = $('#add-form');
    if (form) form.remove();
    ref.release();
    render();
    say('This list is no longer available to you.', 'error');
  }

  const handlers = {
    snapshot(sequence, value) {
      counts.snapshots++;
      entries.clear();
      order = [];
      for (const e of value.entries) {
        entries.set(e.id, e);
        order.push(e.id);
      }
      for (const id of Array.from(editing.keys())) {
        if (!entries.has(id)) editing.delete(id);
      }
      render();
    },
    delta(sequence, delta) {
      counts.deltas++;
      const e = delta.entry;
      if (delta.op === 'add') {
        if (!entries.has(e.id)) order.push(e.id);
        entries.set(e.id, e);
      } else if (delta.op === 'edit') {
        entries.set(e.id, e);
      } else if (delta.op === 'remove') {
        entries.delete(e.id);
        order = order.filter((id) => id !== e.id);
        if (editing.has(e.id)) {
          editing.delete(e.id);
          say('"' + e.text + '" was removed by someone else while you were editing it.', 'conflict');
        }
      }
      render();
    },
    error(err) {
      // NOT_FOUND: the share was withdrawn (the server ended the
      // observation); NO_SUCH_MODEL: it was gone before we looked.
      if (err.code === 'NOT_FOUND' || err.code === 'NO_SUCH_MODEL') unavailable();
      else say('Cannot show this list: ' + describe(err), 'error');
    },
  };

  // Observe once the list is open (a new list of one's own exists then).
  ref.ready.then((r) => {
    if (r.answer.edit !== canEdit) {
      canEdit = r.answer.edit;
      list.textContent = '';
      // The server's word (its access may have changed since the page
      // was made); it checks every call anyway.
      const form = $('#add-form');
      if (form && !canEdit) form.remove();
    }
    page.observation = live.observe(r.answer.model, handlers);
    render();
  }, (err) => {
    if (err.code === 'NOT_FOUND') unavailable();
    else say('Cannot open this list: ' + describe(err), 'error');
  });

  function item(id) {
    const li = document.createElement('li');
    li.dataset.id = id;
    const make = (tag, cls, text) => {
      const el = document.createElement(tag);
      el.className = cls;
      if (text) el.textContent = text;
      if (tag === 'button') el.type = 'button';
      li.appendChild(el);
      return el;
    };
    make('span', 'text');
    if (!canEdit) return li; // read-only: no controls at all
    const input = make('input', 'edit-text');
    input.setAttribute('aria-label', 'Entry text');
    input.maxLength = 500;
    make('button', 'edit', 'Edit').addEventListener('click', () => startEdit(id));
    make('button', 'save', 'Save').addEventListener('click', () => save(id));
    make('button', 'cancel', 'Cancel').addEventListener('click', () => cancel(id));
    make('button', 'remove', 'Remove').addEventListener('click', () => remove(id));
    make('span', 'conflict');
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') save(id);
      if (ev.key === 'Escape') cancel(id);
    });
    return li;
  }

  function element(id) {
    return list.querySelector('li[data-id="' + id + '"]');
  }

  function render() {
    for (const li of Array.from(list.children)) {
      if (!entries.has(Number(li.dataset.id))) li.remove();
    }
    order.forEach((id, i) => {
      const e = entries.get(id);
      const li = element(id) || item(id);
      const isEditing = editing.has(id);
      li.dataset.revision = e.revision;
      li.querySelector('.text').textContent = e.text;
      if (canEdit) {
        li.classList.toggle('editing', isEditing);
        li.querySelector('.text').hidden = isEditing;
        li.querySelector('.edit-text').hidden = !isEditing;
        li.querySelector('.save').hidden = !isEditing;
        li.querySelector('.cancel').hidden = !isEditing;
        li.querySelector('.edit').hidden = isEditing;
        if (!isEditing) li.querySelector('.conflict').textContent = '';
      }
      // Move only what is out of place (moving an element blurs it).
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    $('#empty').hidden = order.length > 0;
  }

  function startEdit(id) {
    const e = entries.get(id);
    if (!e) return;
    editing.set(id, e.revision);
    render();
    const input = element(id).querySelector('.edit-text');
    input.value = e.text;
    input.focus();
  }

  function cancel(id) {
    editing.delete(id);
    render();
  }

  function failed(id, err, action) {
    const li = element(id);
    if (err.code === 'SAVE_CONFLICT') {
      const now = entries.get(id);
      const text = 'Conflict: someone else changed this entry since you ' +
        (action === 'save' ? 'started editing it' : 'last saw it') +
        (now ? ' (it now says "' + now.text + '")' : '') + '. ' +
        (action === 'save' ? 'Save again to replace it with your text, or Cancel.' : 'Look again and retry.');
      if (action === 'save' && editing.has(id)) editing.set(id, err.details.current_revision);
      if (li) li.querySelector('.conflict').textContent = text;
      say(text, 'conflict');
    } else if (err.code === 'NOT_FOUND' && entries.has(id)) {
      // The entry is still shown, so it is the list that went away (or
      // our right to change it).
      say('Not ' + (action === 'save' ? 'saved' : 'removed') + ': you may no longer change this list.', 'error');
    } else if (err.code === 'NOT_FOUND') {
      editing.delete(id);
      render();
      say('That entry was removed by someone else.', 'conflict');
    } else {
      say('Not ' + (action === 'save' ? 'saved' : 'removed') + ': ' + describe(err), 'error');
    }
  }

  function save(id) {
    const li = element(id);
    if (!li || !editing.has(id)) return;
    const text = li.querySelector('.edit-text').value.trim();
    if (!text) return;
    ref.call('EditEntry', {id: id, text: text, revision: editing.get(id)}).then(() => {
      editing.delete(id);
      render();
      say('Saved.');
    }, (err) => failed(id, err, 'save'));
  }

  function remove(id) {
    const e = entries.get(id);
    if (!e) return;
    ref.call('RemoveEntry', {id: id, revision: e.revision}).then(() => {
      editing.delete(id);
      say('Removed "' + e.text + '".');
    }, (err) => failed(id, err, 'remove'));
  }

  const addForm = $('#add-form');
  if (addForm) {
    addForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = newText.value.trim();
      if (!text) return;
      ref.call('AddEntry', {text: text}).then(() => {
        if (newText.value.trim() === text) newText.value = '';
        say('');
      }, (err) => say('Not added: ' + describe(err), 'error'));
    });
  }

  // The owner's sharing panel.
  const shares = $('#shares');
  const shareMessage = $('#share-message');

  function sayShare(text, kind) {
    shareMessage.textContent = text;
    shareMessage.dataset.kind = kind || 'info';
  }

  function showShares(list) {
    shares.textContent = '';
    for (const s of list) {
      const li = document.createElement('li');
      li.dataset.with = s.with;
      li.dataset.access = s.access;
      const who = document.createElement('span');
      who.className = 'with';
      who.textContent = s.with === 'everyone' ? 'everyone (published)' : s.with;
      const access = document.createElement('span');
      access.className = 'access';
      access.textContent = s.access === 'edit' ? 'can edit' : 'can read';
      const withdraw = document.createElement('button');
      withdraw.type = 'button';
      withdraw.className = 'unshare';
      withdraw.textContent = 'Withdraw';
      withdraw.addEventListener('click', () => unshare(s.with));
      li.append(who, access, withdraw);
      shares.appendChild(li);
    }
    $('#no-shares').hidden = list.length > 0;
    $('#public-link').hidden = !list.some((s) => s.with === 'everyone');
  }

  function refreshShares() {
    if (!mine) return Promise.resolve();
    return ref.ready.then(() => live.call('MyLists', {})).then((answer) => {
      const l = answer.lists.find((x) => x.name === name);
      showShares(l ? l.shares : []);
    }, (err) => sayShare('Cannot show who shares this list: ' + describe(err), 'error'));
  }

  function unshare(who) {
    live.call('UnshareList', {name: name, with: who}).then(() => {
      sayShare('Withdrawn from ' + who + '.');
      return refreshShares();
    }, (err) => sayShare('Not withdrawn: ' + describe(err), 'error'));
  }

  const shareForm = $('#share-form');
  if (shareForm) {
    shareForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const who = $('#share-with').value.trim();
      const access = $('#share-access').value;
      if (!who) return;
      live.call('ShareList', {name: name, with: who, access: access}).then(() => {
        $('#share-with').value = '';
        sayShare('Shared with ' + who + ' (' + (access === 'edit' ? 'can edit' : 'can read') + ').');
        return refreshShares();
      }, (err) => sayShare('Not shared: ' + describe(err), 'error'));
    });
  }

  page.refreshShares = refreshShares;
  live.onstatus((online) => {
    if (gone) return;
    status.textContent = online ? 'online' : 'offline, reconnecting…';
    status.dataset.state = online ? 'online' : 'offline';
    if (online && mine) refreshShares();
  });
  render();
})();
