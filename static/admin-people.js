// The admin page's sections about people and servers: accounts (sign-ups waiting with
// their reason, search, suspend, silence, delete, roles, one-time password links), the
// reports queue (ours and other servers'), and domain blocks. admin.js holds the page.

import { del, get, post } from './api.js';
import { actionForm, facts, statusLine, when } from './admin-parts.js';
import { field, submitting } from './forms.js';
import { h } from './ui.js';

const path = (username, action) =>
  `/api/v1/admin/accounts/${encodeURIComponent(username)}/${action}`;

// --- accounts -------------------------------------------------------------------------------

function accountActions(account, ctx, done) {
  const act = async (action, body, said) => {
    await post(path(account.username, action), body || {});
    await done(said);
  };
  const button = (label, action, said, cls = '') => {
    const b = h(`button.button.small${cls}`, {
      type: 'button',
      onclick: async () => {
        b.disabled = true;
        try {
          await act(action, {}, said);
        } catch (err) {
          ctx.showError(err);
          b.disabled = false;
        }
      },
    }, label);
    return b;
  };
  const name = `@${account.username}`;
  const items = [];
  if (account.status === 'pending') {
    items.push(
      button(`Approve ${name}`, 'approve', `Approved ${name}: they can log in now.`, '.primary'),
      button(`Reject ${name}`, 'reject', `Rejected ${name}’s sign-up.`, '.danger-ghost'),
    );
    return items;
  }
  if (account.status === 'active') {
    const reason = h('textarea', { name: 'reason', rows: 2 });
    items.push(
      actionForm(
        'Suspend…',
        field('Reason (shown in their rooms as they end here)', reason, null, { limit: 500 }),
        `Suspend ${name}`,
        () => act('suspend', { reason: reason.value.trim() }, `Suspended ${name}: their rooms ended here.`),
        { danger: true },
      ),
      account.silenced
        ? button('Unsilence', 'unsilence', `${name} is no longer silenced.`)
        : button('Silence', 'silence', `Silenced ${name}: their rooms are not listed nor announced.`),
    );
    if (ctx.admin) {
      const role = h(
        'select',
        { name: 'role' },
        ['user', 'moderator', 'admin'].map((r) => h('option', { value: r, selected: r === account.role }, r)),
      );
      items.push(
        actionForm('Role…', field('Role', role), 'Change role', () =>
          act('role', { role: role.value }, `${name} is now ${role.value === 'user' ? 'a user' : `a ${role.value}`}.`)),
      );
      const link = h('div.reset-link', {});
      const resetButton = h('button.button.small', {
        type: 'button',
        onclick: async () => {
          try {
            const made = await post(path(account.username, 'password-reset'), {});
            const input = h('input', { readonly: true, value: made.url, 'aria-label': `Password link for ${name}` });
            link.replaceChildren(
              h('p', {}, `Pass this one-time link to ${name} (there is no mail). It works until ${when(made.expires_at)}.`),
              input,
            );
            input.focus();
            input.select();
          } catch (err) {
            ctx.showError(err);
          }
        },
      }, 'Password link');
      items.push(resetButton, link);
    }
  } else if (account.status === 'suspended') {
    items.push(button('Unsuspend', 'unsuspend', `${name} is no longer suspended.`));
    if (ctx.admin) {
      items.push(
        actionForm(
          'Delete…',
          h('p', {}, `The suspension becomes final: other servers are told ${name} is gone, the profile, password and sessions are deleted. This cannot be undone.`),
          `Delete ${name} for good`,
          () => act('delete', {}, `Deleted ${name}.`),
          { danger: true },
        ),
      );
    }
  }
  return items;
}

function accountItem(account, ctx, done) {
  const badges = [h(`span.tag.tag-${account.status}`, {}, account.status)];
  if (account.role !== 'user') badges.push(h('span.tag', {}, account.role));
  if (account.silenced) badges.push(h('span.tag.tag-silenced', {}, 'silenced'));
  const own = ctx.me && ctx.me.username === account.username;
  return h(
    'li.admin-item',
    { dataset: { username: account.username } },
    h(
      'div.admin-item-head',
      {},
      h('a.admin-item-title', { href: `/@${encodeURIComponent(account.username)}`, 'data-link': true }, account.display_name || account.username),
      h('span.muted', {}, account.handle),
      ...badges,
    ),
    facts([
      ['Reason given', account.signup_reason],
      ['Joined', when(account.created_at)],
    ]),
    own ? h('p.muted', {}, 'This is you.') : h('div.row.admin-actions', {}, accountActions(account, ctx, done)),
  );
}

export async function accountsSection(body, ctx) {
  const status = statusLine();
  const pendingList = h('ul.admin-list', { 'aria-labelledby': 'pending-h' });
  const resultList = h('ul.admin-list', { 'aria-labelledby': 'accounts-h' });
  const q = h('input', { name: 'q', type: 'search', autocapitalize: 'none', spellcheck: false });
  const which = h(
    'select',
    { name: 'status' },
    [['', 'Any'], ['active', 'Active'], ['suspended', 'Suspended'], ['deleted', 'Deleted'], ['pending', 'Waiting']].map(
      ([value, label]) => h('option', { value }, label),
    ),
  );
  const form = h(
    'form.form.admin-search',
    {
      role: 'search',
      'aria-label': 'Accounts',
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, refresh);
      },
    },
    field('Name', q),
    field('Status', which),
    h('button.button.primary', { type: 'submit' }, 'Search'),
  );
  const done = async (said) => {
    status.say(said);
    await refresh();
  };
  async function refresh() {
    const params = new URLSearchParams();
    if (q.value.trim()) params.set('q', q.value.trim());
    if (which.value) params.set('status', which.value);
    const [pending, found] = await Promise.all([
      get('/api/v1/admin/accounts/pending'),
      get(`/api/v1/admin/accounts?${params}`),
    ]);
    pendingList.replaceChildren(...(pending.accounts || []).map((a) => accountItem(a, ctx, done)));
    if (!(pending.accounts || []).length) pendingList.append(h('li.muted', {}, 'Nobody is waiting.'));
    resultList.replaceChildren(...(found.accounts || []).map((a) => accountItem(a, ctx, done)));
    if (!(found.accounts || []).length) resultList.append(h('li.muted', {}, 'No account matches.'));
  }
  body.append(
    status.el,
    h(
      'section.admin-section',
      { 'aria-labelledby': 'pending-h' },
      h('h2', { id: 'pending-h' }, 'Sign-ups waiting for approval'),
      pendingList,
    ),
    h(
      'section.admin-section',
      { 'aria-labelledby': 'accounts-h' },
      h('h2', { id: 'accounts-h' }, 'Accounts'),
      form,
      resultList,
    ),
  );
  await refresh();
  return null;
}

// --- reports --------------------------------------------------------------------------------

function targetText(report) {
  const t = report.target || {};
  if (t.kind === 'room') return `The room “${t.room_title || t.room_url}”`;
  if (t.kind === 'speaker') return `@${t.account}, speaking in “${t.room_title || t.room_url}”`;
  return `@${t.account}`;
}

function reportItem(report, ctx, done) {
  const t = report.target || {};
  const action = h(
    'select',
    { name: 'action' },
    [
      ['none', 'No action'],
      ...(t.local && t.account ? [['silence', `Silence @${t.account}`], ['suspend', `Suspend @${t.account}`]] : []),
      ...(t.room_url ? [['end_room', 'End the room here']] : []),
    ].map(([value, label]) => h('option', { value }, label)),
  );
  const note = h('textarea', { name: 'note', rows: 2 });
  const resolved = report.state === 'resolved';
  return h(
    'li.admin-item',
    { dataset: { report: String(report.id) } },
    h(
      'div.admin-item-head',
      {},
      h('span.admin-item-title', {}, `#${report.id} ${targetText(report)}`),
      h(`span.tag.tag-${report.state}`, {}, report.state),
    ),
    facts([
      ['Comment', report.comment],
      ['Rule', report.rule],
      ['From', report.forwarded_from ? `the server ${report.forwarded_from}` : report.reporter ? `@${report.reporter}` : ''],
      ['Sent on to their server', report.forward ? 'yes' : ''],
      ['Filed', when(report.created_at)],
      ['Action taken', report.action_taken],
      ['Resolved by', report.resolved_by ? `@${report.resolved_by}, ${when(report.resolved_at)}` : ''],
    ]),
    resolved
      ? h('div.row', {}, h('button.button.small', {
        type: 'button',
        onclick: async () => {
          await post(`/api/v1/admin/reports/${report.id}/reopen`, {});
          await done(`Report #${report.id} is open again.`);
        },
      }, 'Reopen'))
      : actionForm(
        'Resolve…',
        [field('Action', action), field('Note (what you did and why)', note, null, { limit: 500 })],
        `Resolve report #${report.id}`,
        async () => {
          const answer = await post(`/api/v1/admin/reports/${report.id}/resolve`, {
            action: action.value,
            note: note.value.trim(),
          });
          await done(`Report #${report.id} resolved: ${answer.action_taken}.`);
        },
      ),
  );
}

export async function reportsSection(body, ctx) {
  const status = statusLine();
  const list = h('ul.admin-list', { 'aria-labelledby': 'reports-h' });
  const state = h(
    'select',
    { name: 'state', onchange: () => refresh().catch(ctx.showError) },
    [['open', 'Open'], ['resolved', 'Resolved'], ['all', 'All']].map(([value, label]) => h('option', { value }, label)),
  );
  const heading = h('h2', { id: 'reports-h' }, 'Reports');
  async function refresh() {
    const data = await get(`/api/v1/admin/reports?state=${state.value}`);
    const reports = data.reports || [];
    heading.textContent = `Reports (${reports.length})`;
    list.replaceChildren(...reports.map((r) => reportItem(r, ctx, done)));
    if (!reports.length) list.append(h('li.muted', {}, 'No report here.'));
  }
  const done = async (said) => {
    status.say(said);
    await refresh();
  };
  body.append(
    h('p.muted', {}, 'Reports from people here, and from other servers (their Flags). Whoever resolves one is recorded with what was done.'),
    h('div.form.admin-filter', {}, field('Show', state)),
    status.el,
    heading,
    list,
  );
  await refresh();
  return null;
}

// --- domain blocks --------------------------------------------------------------------------

export async function domainsSection(body, ctx) {
  const status = statusLine();
  const list = h('ul.admin-list', { 'aria-labelledby': 'blocks-h' });
  const domain = h('input', { name: 'domain', required: true, autocapitalize: 'none', spellcheck: false, placeholder: 'bad.example' });
  const severity = h(
    'select',
    { name: 'severity' },
    h('option', { value: 'suspend' }, 'Suspend: refuse it both ways, sever follows'),
    h('option', { value: 'silence' }, 'Silence: its rooms unlisted, its users cannot speak here'),
  );
  const comment = h('input', { name: 'public_comment' });
  const note = h('textarea', { name: 'private_note', rows: 2 });
  const form = h(
    'form.form.card',
    {
      'aria-labelledby': 'block-new-h',
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          const made = await post('/api/v1/admin/domain-blocks', {
            domain: domain.value.trim(),
            severity: severity.value,
            public_comment: comment.value.trim(),
            private_note: note.value.trim(),
          });
          form.reset();
          status.say(`Blocked ${made.domain} (${made.severity}). It applies now.`);
          await refresh();
        });
      },
    },
    h('h2', { id: 'block-new-h' }, 'Block a server'),
    field('Domain', domain, 'Its subdomains are blocked too.'),
    field('Severity', severity),
    field('Public comment (on /about)', comment, null, { limit: 500 }),
    field('Private note (staff only)', note, null, { limit: 1000 }),
    h('button.button.danger', { type: 'submit' }, 'Block'),
  );
  async function refresh() {
    const data = await get('/api/v1/admin/domain-blocks');
    const blocks = data.domain_blocks || [];
    list.replaceChildren(
      ...blocks.map((b) =>
        h(
          'li.admin-item',
          { dataset: { domain: b.domain } },
          h('div.admin-item-head', {}, h('span.admin-item-title', {}, b.domain), h(`span.tag.tag-${b.severity}`, {}, b.severity)),
          facts([
            ['Public comment', b.public_comment || b.comment],
            ['Private note', b.private_note],
            ['Since', when(b.created_at)],
            ['By', b.created_by ? `@${b.created_by}` : ''],
          ]),
          b.configured
            ? h('p.muted', {}, 'From node.toml: lifted only by editing it.')
            : h('button.button.small', {
              type: 'button',
              onclick: async () => {
                try {
                  await del(`/api/v1/admin/domain-blocks/${encodeURIComponent(b.domain)}`);
                  status.say(`Lifted the block of ${b.domain}.`);
                  await refresh();
                } catch (err) {
                  ctx.showError(err);
                }
              },
            }, `Lift the block of ${b.domain}`),
        )),
    );
    if (!blocks.length) list.append(h('li.muted', {}, 'No server is blocked.'));
  }
  body.append(form, status.el, h('h2', { id: 'blocks-h' }, 'Blocked servers'), list);
  await refresh();
  return null;
}
