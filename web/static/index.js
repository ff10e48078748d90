// chartee console index: the table follows the consoles' state live
// (server-sent events from /api/consoles/watch).
'use strict';
(function () {
  const tbody = document.querySelector('#consoles tbody');

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(list) {
    tbody.replaceChildren();
    if (list.length === 0) {
      const tr = document.createElement('tr');
      cell(tr, 'No console you may see.').colSpan = 5;
      tbody.appendChild(tr);
      return;
    }
    for (const c of list) {
      const tr = document.createElement('tr');
      tr.dataset.console = c.name;
      const a = document.createElement('a');
      a.href = '/console/' + encodeURIComponent(c.name);
      a.textContent = c.name;
      cell(tr, a);
      const badge = document.createElement('span');
      badge.className = 'badge role-' + c.role;
      badge.textContent = c.role;
      cell(tr, badge);
      cell(tr, (c.frontend_up ? 'up ' : 'down ') + c.device, c.frontend_up ? 'up' : 'down');
      cell(tr, c.write_lock || '');
      const legs = document.createElement('span');
      for (const l of c.attached) {
        const s = document.createElement('span');
        s.className = 'leg';
        s.textContent = l.user || l.name;
        legs.append(s, ' ');
      }
      cell(tr, legs);
      tbody.appendChild(tr);
    }
  }

  const es = new EventSource('/api/consoles/watch');
  es.onmessage = (ev) => render(JSON.parse(ev.data));
})();
