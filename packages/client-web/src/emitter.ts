// A typed event emitter small enough to carry no dependency: `on` returns the function that
// removes the listener, and a throwing listener never stops the others (or the SDK).

/** Listener is a function that handles one event's payload. */
export type Listener<T> = (payload: T) => void;

/** TypedEmitter emits the events of the map `Events` (event name → payload type). */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** on adds a listener and returns the function that removes it. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** once adds a listener for the next event of that name only. */
  once<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(name, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** off removes a listener. */
  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(listener as Listener<never>);
  }

  /** emit calls every listener of `name`; one that throws is reported to the console and the rest still run. */
  protected emit<K extends keyof Events>(name: K, payload: Events[K]): void {
    for (const listener of [...(this.listeners.get(name) ?? [])]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (err) {
        console.error(`@parley/client-web: a "${String(name)}" listener threw`, err);
      }
    }
  }
}
