// chartee console page: one xterm.js terminal joined to a tee by a
// WebSocket. Binary frames are console bytes; text frames are small JSON
// control messages (see web/proto.go). The page keeps the stream offset of
// the next byte it expects (web/resume.go streamPos does the same
// arithmetic, tested) and resumes from it after a drop.
'use strict';
(function () {
  const body = document.body;
  const teeName = body.dataset.tee;
  let canType = body.dataset.input === 'true';
  const stateEl = document.getElementById('state');
  const noticeEl = document.getElementById('notice');
  const lockBtn = document.getElementById('lock');
  const breakBtn = document.getElementById('break');

  const term = new Terminal({ disableStdin: !canType, cursorBlink: canType, scrollback: 10000 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById('term'));
  fit.fit();
  window.addEventListener('resize', () => fit.fit());

  // Stream position: offset of the next byte, bytes known lost.
  const pos = { next: 0, lost: 0, started: false };
  // Test and debugging hooks (read by the e2e tests and the benchmark;
  // onRendered, if set, gets each chunk once xterm.js has parsed it).
  const hook = { term: term, pos: pos, received: 0, connects: 0, hello: null, record: null, sent: [], rendered: 0 };
  if (location.hash === '#record') hook.record = [];
  window.chartee = hook;

  // Flow control as in xterm.js's flow control guide: count bytes handed
  // to term.write, subtract them in its callback once parsed; above HIGH
  // ask the server to pause, below LOW to go on. The server's per-leg
  // queue is then the bound, with the leg's overflow policy.
  const HIGH = 512 * 1024, LOW = 64 * 1024;
  let pending = 0, paused = false;

  let ws = null, retry = 250, holding = false;
  const enc = new TextEncoder();

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }
  function sendKeys(bytes) {
    if (hook.record) hook.sent.push(Array.from(bytes));
    if (canType && ws && ws.readyState === WebSocket.OPEN) ws.send(bytes);
  }

  function notice(text, cls) {
    noticeEl.textContent = text;
    noticeEl.className = 'notice' + (cls ? ' ' + cls : '');
    noticeEl.hidden = !text;
  }

  // Frames that arrive together are handed to xterm.js as one write with
  // one callback (a write per WebSocket message costs more than parsing).
  let batch = [], batchBytes = 0, flushing = false;

  function output(buf) {
    const b = new Uint8Array(buf);
    pos.next += b.length;
    hook.received += b.length;
    if (hook.record) hook.record.push(b);
    pending += b.length;
    batch.push(b);
    batchBytes += b.length;
    if (!flushing) { flushing = true; setTimeout(flush, 0); }
    if (!paused && pending > HIGH) { paused = true; send({ t: 'flow', pause: true }); }
  }

  function flush() {
    flushing = false;
    const n = batchBytes;
    let data = batch[0];
    if (batch.length > 1) {
      data = new Uint8Array(n);
      let off = 0;
      for (const c of batch) { data.set(c, off); off += c.length; }
    }
    batch = [];
    batchBytes = 0;
    term.write(data, () => {
      pending -= n;
      hook.rendered += n;
      if (hook.onRendered) hook.onRendered(data);
      if (paused && pending < LOW) { paused = false; send({ t: 'flow', pause: false }); }
    });
  }

  function onHello(m) {
    hook.hello = m;
    if (m.restarted) {
      term.reset();
      pos.lost = 0;
      notice('The console restarted; showing it from its scrollback.');
    } else if (pos.started && m.lost > 0) {
      pos.lost += m.lost;
      notice(m.lost + ' bytes were lost while disconnected (older than the scrollback).', 'lost');
    } else if (pos.started) {
      notice('');
    }
    pos.next = m.offset;
    pos.started = true;
    paused = false;
    if (pending > HIGH) { paused = true; send({ t: 'flow', pause: true }); }
    send({ t: 'resize', cols: term.cols, rows: term.rows });
  }

  // A reload may change the role while the page is open: the engine
  // already applies it; the page follows.
  function onRole(role, input) {
    document.getElementById('role').textContent = role;
    document.getElementById('role').className = 'badge role-' + role;
    let ro = document.getElementById('readonly');
    if (!input && !ro) {
      ro = document.createElement('span');
      ro.id = 'readonly';
      ro.className = 'badge readonly';
      ro.textContent = 'read-only';
      document.getElementById('role').after(ro);
    }
    if (ro) ro.hidden = input;
    if (breakBtn) breakBtn.hidden = !input;
    canType = input;
    term.options.disableStdin = !input;
  }

  function onStatus(m) {
    if (m.input !== canType) onRole(m.role, m.input);
    let s = m.frontend_up ? 'device up' : 'device down' + (m.last_error ? ' (' + m.last_error + ')' : '');
    if (m.write_lock) s += ' · lock: ' + m.write_lock;
    const users = m.attached.map(a => a.user || a.name);
    s += ' · attached: ' + users.join(', ');
    stateEl.textContent = s;
    stateEl.className = 'state ' + (m.frontend_up ? 'up' : 'down');
    holding = m.you_hold_lock;
    if (lockBtn) {
      lockBtn.textContent = holding ? 'Release lock' : 'Take lock';
      lockBtn.classList.toggle('held', holding);
      lockBtn.hidden = m.input_mode !== 'exclusive' || !canType;
    }
  }

  function onControl(m) {
    switch (m.t) {
      case 'hello': onHello(m); break;
      case 'at':
        pos.lost += m.lost;
        pos.next = m.offset;
        notice(pos.lost + ' bytes dropped for this page so far (it could not keep up).', 'lost');
        break;
      case 'status': onStatus(m); break;
      case 'notice': notice(m.text); break;
      case 'error': notice(m.op + ': ' + m.error, 'lost'); break;
    }
  }

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let url = proto + '//' + location.host + '/console/' + encodeURIComponent(teeName) + '/ws';
    if (pos.started) url += '?from=' + pos.next;
    ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => { hook.connects++; retry = 250; };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') onControl(JSON.parse(ev.data));
      else output(ev.data);
    };
    ws.onclose = (ev) => {
      ws = null;
      if (ev.code === 4001) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return; }
      if (ev.code === 4003 || ev.code === 4004) {
        // Access withdrawn, or no such console: reconnecting cannot help.
        stateEl.textContent = 'closed: ' + (ev.reason || 'not available');
        stateEl.className = 'state down';
        notice('The console was closed for this page: ' + (ev.reason || 'not available') + '.', 'lost');
        return;
      }
      stateEl.textContent = 'disconnected, reconnecting…';
      stateEl.className = 'state down';
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  }

  term.onData(d => sendKeys(enc.encode(d)));
  term.onBinary(d => sendKeys(Uint8Array.from(d, c => c.charCodeAt(0))));
  term.onResize(sz => send({ t: 'resize', cols: sz.cols, rows: sz.rows }));
  if (breakBtn) breakBtn.addEventListener('click', () => { send({ t: 'break' }); term.focus(); });
  if (lockBtn) lockBtn.addEventListener('click', () => { send({ t: 'lock', take: !holding }); term.focus(); });
  connect();
  term.focus();
})();
