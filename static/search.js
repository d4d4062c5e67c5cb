// Search (/search?q=): people by handle or name, rooms by title. A handle on another
// server is looked up by this node (WebFinger); a failed look-up is shown next to the field.

import { get } from './api.js';
import { personSummary, roomCard } from './cards.js';
import { field, setFieldError, submitting } from './forms.js';
import { followButton } from './profile.js';
import { announce, h, setTitle } from './ui.js';

const MAX_QUERY = 200;

export async function renderSearch(main, ctx) {
  setTitle('Search');
  const query = new URLSearchParams(location.search).get('q') || '';
  const input = h('input', {
    name: 'q',
    type: 'search',
    value: query,
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: false,
    required: true,
  });
  const results = h('div.search-results', { 'aria-live': 'polite', 'aria-busy': 'false' });
  const form = h(
    'form.form.search-form',
    {
      role: 'search',
      onsubmit: (event) => {
        event.preventDefault();
        const text = input.value.trim();
        if (!text) {
          setFieldError(input, 'Type a name, a handle like alice@other.example, or a room title.');
          input.focus();
          return;
        }
        history.replaceState(null, '', `/search?q=${encodeURIComponent(text)}`);
        run(text);
      },
    },
    field(
      'Search people and rooms',
      input,
      'A name, a handle (alice@other.example finds people on other servers) or a room title.',
      { limit: MAX_QUERY },
    ),
    h('button.button.primary', { type: 'submit' }, 'Search'),
  );
  main.append(h('h1', {}, 'Search'), form, results);

  async function run(text) {
    results.setAttribute('aria-busy', 'true');
    await submitting(form, async () => {
      const found = await get(`/api/v1/search?q=${encodeURIComponent(text)}`);
      if (found.lookup) setFieldError(input, `${found.lookup.handle}: ${found.lookup.detail}`);
      show(found);
    });
    results.setAttribute('aria-busy', 'false');
  }

  function show(found) {
    const people = found.accounts || [];
    const rooms = found.rooms || [];
    results.replaceChildren(
      h(
        'section.home-section',
        { 'aria-labelledby': 'people-h' },
        h('h2', { id: 'people-h' }, `People (${people.length})`),
        people.length
          ? h(
              'ul.people-list',
              { 'aria-labelledby': 'people-h' },
              people.map((person) =>
                h(
                  'li.person',
                  { dataset: { handle: person.handle } },
                  personSummary(
                    person,
                    person.local ? [] : [h('span.origin-badge', {}, 'another server')],
                  ),
                  ctx.me && ctx.me.username === person.username && person.local
                    ? h('span.muted', {}, 'you')
                    : followButton(ctx, person),
                ),
              ),
            )
          : h('p.muted', {}, 'Nobody found.'),
      ),
      h(
        'section.home-section',
        { 'aria-labelledby': 'rooms-h' },
        h('h2', { id: 'rooms-h' }, `Rooms (${rooms.length})`),
        rooms.length
          ? h('ul.room-list', { 'aria-labelledby': 'rooms-h' }, rooms.map(roomCard))
          : h('p.muted', {}, 'No rooms found.'),
      ),
    );
    announce(`${people.length} people and ${rooms.length} rooms found.`);
  }

  if (query) run(query);
  return null;
}
