/*
 * live.js: the browser client of Mantle's live objects (JSON over a
 * WebSocket at /live). Plain ES2017, no build step, no dependencies: load it
 * with <script src="/live.js"></script> and use window.MantleLive.
 *
 *   const live = new MantleLive();          // ws(s)://<this host>/live
 *   live.onstatus((online, info) => status.textContent = online ? 'online' : 'offline');
 *
 *   // Calls answer with a Promise; errors are MantleLive.Error with
 *   // .code, .description and .details (e.g. SAVE_CONFLICT's revisions).
 *   const me = await live.call('Whoami', {});
 *
 *   // A model: a snapshot, then ordered deltas; resumed after reconnects.
 *   const observation = live.observe('list:shopping', {
 *     snapshot(sequence, value) { render(value); },
 *     delta(sequence, delta) { apply(delta); },
 *     error(err) { console.warn(err); },      // optional (NO_SUCH_MODEL, ...)
 *   });
 *
 *   // A referenceable: re-obtained (OpenList runs again) after a reconnect.
 *   const list = live.reference('OpenList', {name: 'shopping'});
 *   await list.call('AddEntry', {text: 'milk'});
 *
 * Connection. The page's login cookie (same origin) logs the socket in, so
 * a logged-in page needs nothing more; otherwise use live.login(username,
 * password) or live.authenticate(token), which are redone after every
 * reconnect (first with the token they got, then, for login, with the
 * password if the token no longer works). The client reconnects by itself
 * with exponential back-off (250 ms doubling up to 5 s, with jitter), and
 * at once when the browser comes back online.
 *
 * API (everything below is on `live = new MantleLive(url?, options?)`):
 *
 *   live.call(command, args, {handle}) -> Promise<answer>
 *       Rejects at once with code CONNECTION_LOST while offline. A call in
 *       flight when the connection drops rejects with CONNECTION_LOST too:
 *       the server may or may not have run it.
 *   live.onstatus(fn) -> unsubscribe
 *       fn(online, {reason}) now and on every change. live.online is the
 *       current state; live.whenOnline() is a Promise for the next time.
 *   live.observe(model, {snapshot, delta, error?}) -> Observation
 *       snapshot(sequence, value) when a whole model arrives (first
 *       observation, or when the server cannot resume); delta(sequence,
 *       delta) for each change, in order, exactly once. After a reconnect or
 *       a Resync push the model is observed again with `since` = the last
 *       sequence seen, so missed deltas arrive as deltas (or, if too many
 *       were missed, as a new snapshot). observation.sequence is the last
 *       sequence seen; observation.close() stops observing. If the server
 *       ends the observation for good (an Ended push: the share it was
 *       granted through was withdrawn, code NOT_FOUND), error(err) is
 *       called and the observation is closed.
 *   live.reference(command, args, field = 'handle') -> RemoteRef
 *       Runs `command` and keeps answer[field] as a handle. ref.call(cmd,
 *       args) calls on the handle (waiting for it if it is being obtained);
 *       after a reconnect the handle is obtained again by re-running the
 *       command. ref.ready resolves with the ref once it has a handle;
 *       ref.handle is the current one (null while it has none);
 *       ref.release() drops it.
 *   live.login(username, password) -> Promise<{token}>
 *   live.authenticate(token) -> Promise<{username}>
 *   live.onpush(fn) -> unsubscribe: fn(command, args) for pushes other than
 *       Delta, Resync and Ended.
 *   live.close() stops (no more reconnects); live.open() starts again.
 *
 * Options: {minDelay: 250, maxDelay: 5000 (ms, back-off), keepalive: 25000
 * (ms of silence before a Whoami is sent to check the connection; 0: never),
 * connect: true (false: call live.open() yourself)}.
 */
(function (root) {
  'use strict';

  const CONNECTION_LOST = 'CONNECTION_LOST';
  const OPEN = 1; // WebSocket.OPEN

  /** An error answer: code, description, details (an object). */
  class MantleLiveError extends Error {
    constructor(code, description, details) {
      super(code + ': ' + description);
      this.name = 'MantleLiveError';
      this.code = code;
      this.description = description;
      this.details = details || {};
    }
  }

  function lost(why) {
    return new MantleLiveError(CONNECTION_LOST, why || 'not connected to the server', {});
  }

  function defaultUrl() {
    const l = root.location;
    return (l.protocol === 'https:' ? 'wss://' : 'ws://') + l.host + '/live';
  }

  function report(what, err) {
    if (root.console) root.console.warn('MantleLive: ' + what, err);
  }

  /** One model observed by a MantleLive (see live.observe). */
  class Observation {
    constructor(live, model, handlers) {
      this.live = live;
      this.model = model;
      this.handlers = handlers || {};
      /** The last sequence seen (null before the first snapshot). */
      this.sequence = null;
      this.closed = false;
      this._generation = 0;
      this._asking = false;
    }

    /** (Re)starts observing, from the last sequence seen if any. */
    _start() {
      if (this.closed || !this.live._isOpen()) return;
      const generation = ++this._generation;
      const args = {model: this.model};
      if (this.sequence !== null) args.since = this.sequence;
      this._asking = true;
      this.live._request('Observe', args).then((answer) => {
        if (generation !== this._generation || this.closed) return;
        this._asking = false;
        if (!answer.resumed) {
          this.sequence = answer.sequence;
          this._handle('snapshot', answer.sequence, answer.snapshot);
        }
        // Resumed: the missed deltas follow as Delta pushes.
      }, (err) => {
        if (generation !== this._generation || this.closed) return;
        this._asking = false;
        // A lost connection is retried on reconnect; say anything else.
        if (err.code !== CONNECTION_LOST) this._error(err);
      });
    }

    _delta(sequence, delta) {
      if (this.closed || this.sequence === null) return; // a snapshot will cover it
      if (sequence <= this.sequence) return; // seen already
      if (sequence !== this.sequence + 1) {
        // A gap: ask again from what we have (the server sends a Resync
        // itself when it drops deltas; this is a second line of defence).
        if (!this._asking) this._start();
        return;
      }
      this.sequence = sequence;
      this._handle('delta', sequence, delta);
    }

    _handle(kind, sequence, value) {
      const fn = this.handlers[kind];
      if (typeof fn !== 'function') return;
      try {
        fn.call(this.handlers, sequence, value);
      } catch (e) {
        report(kind + ' handler of ' + this.model + ' failed', e);
      }
    }

    _error(err) {
      if (typeof this.handlers.error === 'function') {
        try {
          this.handlers.error.call(this.handlers, err);
        } catch (e) {
          report('error handler of ' + this.model + ' failed', e);
        }
      } else {
        report('observing ' + this.model + ' failed', err);
      }
    }

    /** Stops observing. */
    close() {
      if (this.closed) return;
      this.closed = true;
      if (this.live._observations.get(this.model) === this) {
        this.live._observations.delete(this.model);
      }
      if (this.live._isOpen()) {
        this.live._request('Unobserve', {model: this.model}).catch(() => {});
      }
    }
  }

  /** A handle to a server object, re-obtained after reconnects. */
  class RemoteRef {
    constructor(live, command, args, field) {
      this.live = live;
      this.command = command;
      this.args = args || {};
      this.field = field || 'handle';
      /** The handle on the current connection (null while there is none). */
      this.handle = null;
      /** The last answer of the command that gave the handle. */
      this.answer = null;
      this.released = false;
      this._connection = -1;
      this._obtaining = null;
      this.ready = new Promise((resolve, reject) => {
        this._ready = {resolve, reject};
      });
      this.ready.catch(() => {}); // only for those who wait on it
      if (live.online) this._renew(); // else when it comes online
    }

    _current() {
      return this.handle !== null && this._connection === this.live._connection;
    }

    /** Runs the command for a handle on this connection (once at a time). */
    _obtain() {
      if (this._obtaining) return this._obtaining;
      const connection = this.live._connection;
      const p = this.live._request(this.command, this.args).then((answer) => {
        const handle = answer[this.field];
        if (typeof handle !== 'number') {
          throw new MantleLiveError('BAD_ANSWER', 'the answer to ' + this.command +
            ' has no handle in "' + this.field + '"', {answer: answer});
        }
        if (connection !== this.live._connection) throw lost('reconnected meanwhile');
        if (this.released) {
          this.live._request('Release', {handle: handle}).catch(() => {});
          throw new MantleLiveError('RELEASED', 'this reference was released', {});
        }
        this.handle = handle;
        this.answer = answer;
        this._connection = connection;
        if (this._ready) {
          this._ready.resolve(this);
          this._ready = null;
        }
        return this;
      }, (err) => {
        if (this._ready && err.code !== CONNECTION_LOST) {
          this._ready.reject(err);
          this._ready = null;
        }
        throw err;
      });
      const done = () => {
        if (this._obtaining === tracked) this._obtaining = null;
      };
      const tracked = p.then((r) => { done(); return r; }, (e) => { done(); throw e; });
      this._obtaining = tracked;
      return tracked;
    }

    /** After (re)connecting: obtain a handle again. */
    _renew() {
      if (this.released) return;
      this._obtain().catch((err) => {
        if (err.code !== CONNECTION_LOST) report('could not obtain a handle with ' + this.command, err);
      });
    }

    _forget() {
      this.handle = null;
      this._obtaining = null;
    }

    /** Calls `command` on the handle; a Promise of the answer. */
    async call(command, args) {
      if (this.released) throw new MantleLiveError('RELEASED', 'this reference was released', {});
      if (!this.live.online) throw lost('offline');
      for (let attempt = 0; ; attempt++) {
        if (!this._current()) await this._obtain();
        try {
          return await this.live._request(command, args, this.handle);
        } catch (err) {
          // The handle died (released by the server, or from an older
          // connection): the call did not run, so get one and try once more.
          if (err.code === 'NO_SUCH_HANDLE' && attempt === 0) {
            this.handle = null;
            continue;
          }
          throw err;
        }
      }
    }

    /** Drops the handle (here and on the server). */
    release() {
      if (this.released) return;
      this.released = true;
      this.live._refs.delete(this);
      if (this._current() && this.live._isOpen()) {
        this.live._request('Release', {handle: this.handle}).catch(() => {});
      }
      this.handle = null;
    }
  }

  class MantleLive {
    constructor(url, options) {
      if (url && typeof url === 'object') {
        options = url;
        url = undefined;
      }
      options = options || {};
      this.url = url || defaultUrl();
      this.minDelay = options.minDelay || 250;
      this.maxDelay = options.maxDelay || 5000;
      this.keepalive = options.keepalive === undefined ? 25000 : options.keepalive;
      /** Whether calls can be made now. */
      this.online = false;
      this._ws = null;
      this._connection = 0; // counts connections; handles belong to one
      this._nextId = 1;
      this._pending = new Map();
      this._statusFns = [];
      this._pushFns = [];
      this._onlineWaiters = [];
      this._observations = new Map();
      this._refs = new Set();
      this._auth = null; // {token} or {username, password, token}
      this._authWaiters = [];
      this._delay = this.minDelay;
      this._timer = null;
      this._keepaliveTimer = null;
      this._lastHeard = 0;
      this._stopped = true;
      if (root.addEventListener) {
        root.addEventListener('online', () => this._retryNow());
      }
      if (options.connect !== false) this.open();
    }

    /** Starts connecting (the constructor does, unless {connect: false}). */
    open() {
      this._stopped = false;
      if (!this._ws && !this._timer) this._connect();
    }

    /** Closes the connection and stops reconnecting. */
    close() {
      this._stopped = true;
      if (this._timer) {
        clearTimeout(this._timer);
        this._timer = null;
      }
      if (this._ws) this._lost('closed by the page');
    }

    /** A Promise resolved when the client is (next) online. */
    whenOnline() {
      if (this.online) return Promise.resolve(this);
      return new Promise((resolve) => this._onlineWaiters.push(resolve));
    }

    /** fn(online, {reason}) now and whenever the state changes. */
    onstatus(fn) {
      this._statusFns.push(fn);
      try {
        fn(this.online, {reason: this.online ? 'connected' : 'connecting'});
      } catch (e) {
        report('status handler failed', e);
      }
      return () => {
        this._statusFns = this._statusFns.filter((f) => f !== fn);
      };
    }

    /** fn(command, args) for pushes other than Delta and Resync. */
    onpush(fn) {
      this._pushFns.push(fn);
      return () => {
        this._pushFns = this._pushFns.filter((f) => f !== fn);
      };
    }

    /** Calls `command`; a Promise of the answer (see the top of the file). */
    call(command, args, options) {
      if (!this.online) return Promise.reject(lost('offline'));
      return this._request(command, args, options && options.handle);
    }

    /** Observes `model` (one observation per model and client). */
    observe(model, handlers) {
      if (this._observations.has(model)) {
        throw new Error('MantleLive: ' + model + ' is already observed; close that observation first');
      }
      const o = new Observation(this, model, handlers);
      this._observations.set(model, o);
      if (this.online) o._start();
      return o;
    }

    /** A RemoteRef to the handle answered by `command` (in answer[field]). */
    reference(command, args, field) {
      const ref = new RemoteRef(this, command, args, field || 'handle');
      this._refs.add(ref);
      return ref;
    }

    /** Logs in (and again after each reconnect); a Promise of {token}. */
    login(username, password) {
      return this._logIn({username: username, password: password, token: null});
    }

    /** Logs in with a token (and again after each reconnect). */
    authenticate(token) {
      return this._logIn({token: token});
    }

    _logIn(auth) {
      this._auth = auth;
      if (this.online) {
        return this._restoreAuth(auth);
      }
      // Connecting: the log-in is done before going online.
      return new Promise((resolve, reject) => this._authWaiters.push({resolve, reject}));
    }

    async _restoreAuth(auth) {
      if (auth.token) {
        try {
          const a = await this._request('Authenticate', {token: auth.token});
          return auth.password ? {token: auth.token} : a;
        } catch (err) {
          if (err.code !== 'UNAUTHORIZED' || !auth.password) throw err;
        }
      }
      const a = await this._request('Login', {username: auth.username, password: auth.password});
      auth.token = a.token;
      return a;
    }

    // --- the connection ---------------------------------------------------

    _isOpen() {
      return this._ws !== null && this._ws.readyState === OPEN;
    }

    _connect() {
      this._timer = null;
      if (this._stopped || this._ws) return;
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        report('cannot open ' + this.url, e);
        this._schedule();
        return;
      }
      this._ws = ws;
      this._connection++;
      ws.onopen = () => {
        if (this._ws === ws) this._opened(ws);
      };
      ws.onmessage = (event) => {
        if (this._ws === ws) this._message(event.data);
      };
      ws.onclose = (event) => {
        if (this._ws === ws) {
          this._lost('connection closed (' + event.code + (event.reason ? ': ' + event.reason : '') + ')');
        }
      };
      ws.onerror = () => {}; // a close event follows
    }

    async _opened(ws) {
      this._lastHeard = Date.now();
      this._startKeepalive(ws);
      // Log in again (and once more if the page logged in meanwhile).
      for (let done = null; this._auth && this._auth !== done;) {
        const auth = this._auth;
        done = auth;
        const waiters = this._authWaiters.splice(0);
        try {
          const answer = await this._restoreAuth(auth);
          waiters.forEach((w) => w.resolve(answer));
        } catch (err) {
          if (err.code === CONNECTION_LOST) {
            this._authWaiters.push(...waiters); // try again next time
            return;
          }
          // Wrong credentials are not retried: the page must log in again.
          if (this._auth === auth) this._auth = null;
          waiters.forEach((w) => w.reject(err));
          report('logging in again failed', err);
        }
        if (this._ws !== ws) return;
      }
      if (this._ws !== ws) return;
      this._delay = this.minDelay;
      this._setOnline(true, 'connected');
      for (const o of this._observations.values()) o._start();
      for (const r of this._refs) r._renew();
    }

    _lost(why) {
      const ws = this._ws;
      this._ws = null;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch (e) {
          // already closing
        }
      }
      this._stopKeepalive();
      const pending = this._pending;
      this._pending = new Map();
      for (const p of pending.values()) p.reject(lost(why));
      for (const r of this._refs) r._forget();
      this._setOnline(false, why);
      this._schedule();
    }

    _schedule() {
      if (this._stopped || this._timer || this._ws) return;
      const delay = Math.round(this._delay * (0.8 + 0.4 * Math.random()));
      this._delay = Math.min(this.maxDelay, this._delay * 2);
      this._timer = setTimeout(() => this._connect(), delay);
    }

    _retryNow() {
      if (this._stopped || this._ws || !this._timer) return;
      clearTimeout(this._timer);
      this._timer = null;
      this._delay = this.minDelay;
      this._connect();
    }

    _setOnline(online, reason) {
      if (this.online === online) return;
      this.online = online;
      for (const fn of this._statusFns.slice()) {
        try {
          fn(online, {reason: reason});
        } catch (e) {
          report('status handler failed', e);
        }
      }
      if (online) this._onlineWaiters.splice(0).forEach((resolve) => resolve(this));
    }

    _startKeepalive(ws) {
      this._stopKeepalive();
      if (!this.keepalive) return;
      this._keepaliveTimer = setInterval(() => {
        if (this._ws !== ws || !this._isOpen()) return;
        if (Date.now() - this._lastHeard < this.keepalive) return;
        const deadline = setTimeout(() => {
          if (this._ws === ws) this._lost('the server did not answer a keepalive');
        }, Math.max(5000, this.keepalive / 2));
        // Any answer, even UNAUTHORIZED, shows the connection works.
        const done = () => clearTimeout(deadline);
        this._request('Whoami', {}).then(done, done);
      }, this.keepalive);
    }

    _stopKeepalive() {
      if (this._keepaliveTimer) {
        clearInterval(this._keepaliveTimer);
        this._keepaliveTimer = null;
      }
    }

    /** Sends a request on the open socket (online or still logging in). */
    _request(command, args, handle) {
      const ws = this._ws;
      if (!ws || ws.readyState !== OPEN) return Promise.reject(lost('offline'));
      const id = this._nextId++;
      const message = {id: id, command: command, args: args || {}};
      if (handle !== undefined && handle !== null) message.handle = handle;
      return new Promise((resolve, reject) => {
        this._pending.set(id, {resolve, reject});
        try {
          ws.send(JSON.stringify(message));
        } catch (e) {
          this._pending.delete(id);
          reject(lost('could not send: ' + e));
        }
      });
    }

    _message(text) {
      this._lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        report('a message that is not JSON', text);
        return;
      }
      if (msg.command !== undefined && msg.id === undefined) {
        this._push(msg.command, msg.args || {});
        return;
      }
      const p = this._pending.get(msg.id);
      if (!p) {
        if (msg.error) report('an error without a request', msg.error);
        return;
      }
      this._pending.delete(msg.id);
      if (msg.error) {
        p.reject(new MantleLiveError(msg.error.code, msg.error.description, msg.error.details));
      } else {
        p.resolve(msg.answer || {});
      }
    }

    _push(command, args) {
      const o = this._observations.get(args.model);
      if (command === 'Delta') {
        if (o) o._delta(args.sequence, args.delta);
      } else if (command === 'Resync') {
        if (o && !o.closed) o._start();
      } else if (command === 'Ended') {
        // Ended for good (a withdrawn share): say so, and never observe
        // it again.
        if (o && !o.closed) {
          o.closed = true;
          this._observations.delete(args.model);
          o._error(new MantleLiveError(args.code, args.reason, {}));
        }
      } else {
        for (const fn of this._pushFns.slice()) {
          try {
            fn(command, args);
          } catch (e) {
            report('push handler failed', e);
          }
        }
      }
    }
  }

  MantleLive.Error = MantleLiveError;
  MantleLive.Observation = Observation;
  MantleLive.RemoteRef = RemoteRef;
  MantleLive.CONNECTION_LOST = CONNECTION_LOST;
  root.MantleLive = MantleLive;
  if (typeof module === 'object' && module.exports) module.exports = MantleLive;
})(typeof window !== 'undefined' ? window : globalThis);
