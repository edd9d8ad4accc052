import { changeLiveConversations } from '@parley/platform';
import type { LiveConversation } from './conversation.js';

/**
 * LiveConversations is this replica's set of conversations with an open connection. It is not
 * shared state: which conversations are live across replicas is tenant-data's conversations table.
 */
export class LiveConversations {
  readonly #byId = new Map<string, LiveConversation>();

  /** add registers a conversation that has just started. */
  add(conversation: LiveConversation): void {
    if (!this.#byId.has(conversation.conversationId)) changeLiveConversations(1);
    this.#byId.set(conversation.conversationId, conversation);
  }

  /** remove forgets an ended conversation. */
  remove(conversation: LiveConversation): void {
    if (this.#byId.get(conversation.conversationId) === conversation) {
      this.#byId.delete(conversation.conversationId);
      changeLiveConversations(-1);
    }
  }

  /** get finds a live conversation of a tenant held here. */
  get(tenantId: string, conversationId: string): LiveConversation | undefined {
    const c = this.#byId.get(conversationId);
    return c !== undefined && c.tenantId === tenantId ? c : undefined;
  }

  /** list returns the live conversations held here, optionally of one tenant. */
  list(tenantId?: string): LiveConversation[] {
    return [...this.#byId.values()].filter((c) => tenantId === undefined || tenantId === '' || c.tenantId === tenantId);
  }

  /** size is the number held here. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * drain ends every live conversation politely: a reply in progress may finish within half the
   * deadline, then each gets an end frame, a 1001 close and its end recorded.
   */
  async drain(deadlineMs: number): Promise<void> {
    await Promise.all(
      this.list().map((c) =>
        c.end('server shutting down', {
          closeCode: 1001,
          closeReason: 'server shutting down; reconnect to continue',
          letReplyFinishMs: Math.floor(deadlineMs / 2),
        }),
      ),
    );
  }
}
