// The lists page's script (served as /lists/page.js: the site's content
// security policy runs no inline scripts).
(function () {
  'use strict';
  const name = document.body.dataset.list;
  const $ = (selector) => document.querySelector(selector);
  const status = $('#status');
  const list = $('#entries');
  const message = $('#message');
  const newText = $('#new-text');

  const live = new MantleLive();
  const ref = live.reference('OpenList', {name: name});
  const entries = new Map(); // id -> {id, text, revision}
  let order = []; // ids, in list order
  const editing = new Map(); // id -> the revision the edit is made against
  const counts = {snapshots: 0, deltas: 0};

  function say(text, kind) {
    message.textContent = text;
    message.dataset.kind = kind || 'info';
  }

  function describe(err) {
    if (err.code === 'CONNECTION_LOST') return 'offline, nothing was saved; try again when back online';
    return err.description || String(err);
  }

  live.onstatus((online) => {
    status.textContent = online ? 'online' : 'offline, reconnecting…';
    status.dataset.state = online ? 'online' : 'offline';
  });

  const observation = live.observe('list:' + name, {
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
      say('Cannot show this list: ' + describe(err), 'error');
    },
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
      li.classList.toggle('editing', isEditing);
      li.querySelector('.text').textContent = e.text;
      li.querySelector('.text').hidden = isEditing;
      li.querySelector('.edit-text').hidden = !isEditing;
      li.querySelector('.save').hidden = !isEditing;
      li.querySelector('.cancel').hidden = !isEditing;
      li.querySelector('.edit').hidden = isEditing;
      if (!isEditing) li.querySelector('.conflict').textContent = '';
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

  $('#add-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = newText.value.trim();
    if (!text) return;
    ref.call('AddEntry', {text: text}).then(() => {
      if (newText.value.trim() === text) newText.value = '';
      say('');
    }, (err) => say('Not added: ' + describe(err), 'error'));
  });

  ref.ready.catch((err) => say('Cannot open this list: ' + describe(err), 'error'));
  render();
  // For tests and the curious.
  window.listsPage = {live: live, ref: ref, observation: observation, counts: counts, entries: entries};
})();
