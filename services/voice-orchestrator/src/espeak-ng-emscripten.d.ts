// The eSpeak NG Emscripten build ships no types: the part of its module the worker uses.
declare module '@echogarden/espeak-ng-emscripten' {
  /** EspeakModule is the initialised Emscripten module. */
  interface EspeakModule {
    eSpeakNGWorker: new () => {
      set_voice(voice: string): void;
      get_samplerate(): number;
      /** synthesize calls back with each chunk of samples; returning true stops the synthesis. */
      synthesize(text: string, callback: (samples: Int16Array | undefined, events: unknown[]) => boolean): void;
    };
  }
  /** init loads the engine and its voice data (bundled in the package). */
  export default function init(): Promise<EspeakModule>;
}
