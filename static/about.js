// /about: what this server is, its rules, whom to contact, how to join, and which servers
// it blocks with the reason it gives (GET /api/v1/about). /reset-password: a one-time link
// an admin passed on sets a new password.

import { get, post } from './api.js';
import { field, setFieldError, submitting } from './forms.js';
import { announce, h, setTitle } from './ui.js';

const REGISTRATION = {
  open: 'Anyone can sign up.',
  approval: 'Sign-ups are reviewed: say why you want to join, and an admin approves you.',
  closed: 'This server is not taking new accounts.',
};

const SEVERITY = {
  suspend: 'Suspended: no contact at all',
  silence: 'Silenced: their rooms are not listed here, their people cannot speak here',
};

export async function renderAbout(main) {
  const about = await get('/api/v1/about');
  setTitle(`About ${about.name}`);
  const rules = about.rules || [];
  const blocks = about.domain_blocks || [];
  main.append(
    h(
      'div.about',
      {},
      h(
        'section.card',
        { 'aria-labelledby': 'about-h' },
        h('h1', { id: 'about-h' }, `About ${about.name}`),
        about.description ? h('p.about-description', {}, about.description) : null,
        h('p.muted', {}, `A Parley server at ${about.host}: live audio rooms that other servers of the fediverse can carry on.`),
        h('p', {}, REGISTRATION[about.registration] || ''),
        about.contact
          ? h('p', {}, 'Contact: ', h('a', { href: about.contact.url, 'data-link': true }, `@${about.contact.username}`))
          : null,
      ),
      h(
        'section.card',
        { 'aria-labelledby': 'rules-h' },
        h('h2', { id: 'rules-h' }, 'Rules'),
        rules.length
          ? h('ol.rules', {}, rules.map((rule) => h('li', {}, rule)))
          : h('p.muted', {}, 'No rules written yet.'),
      ),
      h(
        'section.card',
        { 'aria-labelledby': 'blocked-h' },
        h('h2', { id: 'blocked-h' }, 'Moderated servers'),
        blocks.length
          ? h(
            'ul.admin-list',
            { 'aria-labelledby': 'blocked-h' },
            blocks.map((b) =>
              h(
                'li.admin-item',
                {},
                h('div.admin-item-head', {}, h('span.admin-item-title', {}, b.domain), h(`span.tag.tag-${b.severity}`, {}, b.severity)),
                h('p.muted', {}, SEVERITY[b.severity] || b.severity),
                b.comment ? h('p', {}, b.comment) : null,
              )),
          )
          : h('p.muted', {}, 'This server blocks no other server.'),
      ),
    ),
  );
  return null;
}

export function renderResetPassword(main) {
  setTitle('Choose a new password');
  // The token travels in the fragment: it never reaches a server's logs or a Referer.
  const token = location.hash.slice(1);
  if (!token) {
    main.append(
      h(
        'section.card.narrow',
        {},
        h('h1', {}, 'Choose a new password'),
        h('p', {}, 'This page needs the link an admin gave you. Ask them for a new one.'),
      ),
    );
    return null;
  }
  const fresh = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true });
  const again = h('input', { name: 'password_again', type: 'password', autocomplete: 'new-password', required: true });
  const form = h(
    'form.form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        if (fresh.value !== again.value) {
          setFieldError(again, 'The two passwords are not the same.');
          again.focus();
          return;
        }
        submitting(form, async () => {
          const done = await post('/api/v1/password-reset', { token, password: fresh.value });
          history.replaceState(null, '', '/reset-password');
          main.replaceChildren(
            h(
              'section.card.narrow',
              {},
              h('h1', { tabindex: '-1' }, 'Password set'),
              h('p', { role: 'status' }, `Your new password works now, ${done.username}.`),
              h('a.button.primary', { href: '/login', 'data-link': true }, 'Log in'),
            ),
          );
          main.querySelector('h1').focus();
          announce('Password set.');
        });
      },
    },
    field('New password', fresh, 'At least 8 characters. The link works once.'),
    field('New password again', again),
    h('button.button.primary', { type: 'submit' }, 'Set password'),
  );
  main.append(h('section.card.narrow', {}, h('h1', {}, 'Choose a new password'), form));
  return null;
}
