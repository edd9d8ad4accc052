// Conversations and their transcripts. Reading a transcript decrypts it, and tenant-data records
// every such read in the audit log; the page says so before it shows one.
import type { PageProps } from '../page-props.js';
import { href } from '../router.js';
import { LoadState, Notice, PageTitle, useLoad, when } from '../ui.js';

function ConversationList({ api }: PageProps) {
  const list = useLoad(async () => (await api.conversations.listConversations({ pageSize: 100 })).conversations);
  return (
    <>
      <PageTitle>Conversations</PageTitle>
      <LoadState loaded={list} />
      {list.data === undefined ? null : list.data.length === 0 ? (
        <Notice>No conversations yet.</Notice>
      ) : (
        <table id="conversations">
          <caption>Conversations, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">State</th>
              <th scope="col">Agent</th>
              <th scope="col">Ended</th>
              <th scope="col">Transcript</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((c) => (
              <tr key={c.id}>
                <td>{when(c.startedAt)}</td>
                <td>{c.state}</td>
                <td>
                  <a href={href('agents', c.agentId)}>{c.agentId.slice(0, 8)}</a>
                </td>
                <td>{when(c.endedAt) ? `${when(c.endedAt)} (${c.endReason})` : ''}</td>
                <td>
                  <a href={href('conversations', c.id)}>
                    Read<span class="sr-only"> the transcript of {c.id}</span>
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function Transcript({ api, id }: PageProps & { id: string }) {
  const convo = useLoad(async () => {
    const [c, t] = await Promise.all([
      api.conversations.getConversation({ conversationId: id }),
      api.conversations.listTranscriptTurns({ conversationId: id, pageSize: 500 }),
    ]);
    return { conversation: c.conversation, turns: t.turns };
  }, [id]);
  const c = convo.data?.conversation;
  return (
    <>
      <p>
        <a href={href('conversations')}>← All conversations</a>
      </p>
      <PageTitle>Conversation</PageTitle>
      <p class="hint">Reading a transcript is recorded in the audit log under your name.</p>
      <LoadState loaded={convo} />
      {c === undefined ? null : (
        <dl class="facts">
          <dt>Id</dt>
          <dd>
            <code>{c.id}</code>
          </dd>
          <dt>State</dt>
          <dd>{c.state}</dd>
          <dt>Started</dt>
          <dd>{when(c.startedAt)}</dd>
          <dt>Ended</dt>
          <dd>{when(c.endedAt) ? `${when(c.endedAt)} (${c.endReason})` : '—'}</dd>
        </dl>
      )}
      {convo.data === undefined ? null : convo.data.turns.length === 0 ? (
        <Notice>No transcript turns.</Notice>
      ) : (
        <ol class="transcript" id="transcript">
          {convo.data.turns.map((t) => (
            <li key={t.seq} class={t.role}>
              <span class="role">{t.role}</span> <span class="text">{t.text}</span> <time>{when(t.createdAt)}</time>
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

/** ConversationsPage is /console/conversations and /console/conversations/<id> (its transcript). */
export function ConversationsPage(props: PageProps) {
  return props.id === undefined ? <ConversationList {...props} /> : <Transcript {...props} id={props.id} />;
}
