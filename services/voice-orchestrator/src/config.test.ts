import { describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from './config.js';

describe('loadOrchestratorConfig', () => {
  it('has defaults for everything', () => {
    expect(loadOrchestratorConfig({})).toMatchObject({
      sessionPort: 9444,
      startTimeoutMs: 5_000,
      maxMessageBytes: 16_384,
      sessionTls: undefined,
      audioFrameMs: 40,
      playbackLeadMs: 100,
      maxAudioBufferedBytes: 262_144,
      slowClientMs: 2_000,
      embeddedTtsWorkers: 1,
      recordingMaxBytes: 67_108_864,
      recordingBufferBytes: 134_217_728,
      recordingShutdownWaitMs: undefined,
    });
  });

  it('reads the voice settings and refuses values out of range by name', () => {
    expect(loadOrchestratorConfig({ PARLEY_VOICE_PLAYBACK_LEAD_MS: '0', PARLEY_TTS_EMBEDDED_WORKERS: '0' })).toMatchObject({
      playbackLeadMs: 0,
      embeddedTtsWorkers: 0,
    });
    expect(() => loadOrchestratorConfig({ PARLEY_VOICE_FRAME_MS: '5' })).toThrow(/PARLEY_VOICE_FRAME_MS/);
    expect(() => loadOrchestratorConfig({ PARLEY_TTS_EMBEDDED_WORKERS: '64' })).toThrow(/PARLEY_TTS_EMBEDDED_WORKERS/);
    expect(() => loadOrchestratorConfig({ PARLEY_VOICE_MAX_BUFFERED_BYTES: '10' })).toThrow(/PARLEY_VOICE_MAX_BUFFERED_BYTES/);
    expect(loadOrchestratorConfig({ PARLEY_RECORDING_BUFFER_BYTES: '8388608' }).recordingBufferBytes).toBe(8_388_608);
    expect(() => loadOrchestratorConfig({ PARLEY_RECORDING_BUFFER_BYTES: '1000' })).toThrow(/PARLEY_RECORDING_BUFFER_BYTES/);
    expect(loadOrchestratorConfig({ PARLEY_RECORDING_SHUTDOWN_WAIT_MS: '15000' }).recordingShutdownWaitMs).toBe(15_000);
    expect(() => loadOrchestratorConfig({ PARLEY_RECORDING_SHUTDOWN_WAIT_MS: 'soon' })).toThrow(/PARLEY_RECORDING_SHUTDOWN_WAIT_MS/);
  });

  it('names the variable that is wrong', () => {
    expect(() => loadOrchestratorConfig({ PARLEY_SESSION_START_TIMEOUT_MS: '10' })).toThrow(/PARLEY_SESSION_START_TIMEOUT_MS/);
    expect(() => loadOrchestratorConfig({ PARLEY_PUBLIC_PORT: '70000' })).toThrow(/PARLEY_PUBLIC_PORT/);
    expect(() => loadOrchestratorConfig({ PARLEY_PUBLIC_TLS_CERT: '/tmp/cert.pem' })).toThrow(/PARLEY_PUBLIC_TLS_KEY/);
    expect(() => loadOrchestratorConfig({ PARLEY_SESSION_TRUSTED_PROXIES: 'lb.local' })).toThrow(/PARLEY_SESSION_TRUSTED_PROXIES/);
  });

  it('trusts no proxy in front of the session port unless told', () => {
    expect(loadOrchestratorConfig({}).trustedProxies.cidrs).toEqual([]);
    expect(loadOrchestratorConfig({ PARLEY_SESSION_TRUSTED_PROXIES: '10.0.0.0/8' }).trustedProxies.has('10.1.2.3')).toBe(true);
  });

  it('reads the egress port list and private allow-list as integrations does', () => {
    expect(loadOrchestratorConfig({}).egressPolicy).toMatchObject({ allowedPorts: [443], allowPrivate: [] });
    const config = loadOrchestratorConfig({
      PARLEY_EGRESS_ALLOWED_PORTS: '443, 8443',
      PARLEY_EGRESS_ALLOW_PRIVATE: '10.20.0.0/16,llm.corp.example',
    });
    expect(config.egressPolicy.allowedPorts).toEqual([443, 8443]);
    expect(config.egressPolicy.allowPrivate.map((e) => e.text)).toEqual(['10.20.0.0/16', 'llm.corp.example']);
    expect(() => loadOrchestratorConfig({ PARLEY_EGRESS_ALLOWED_PORTS: '0' })).toThrow(/PARLEY_EGRESS_ALLOWED_PORTS/);
    expect(() => loadOrchestratorConfig({ PARLEY_EGRESS_ALLOW_PRIVATE: '10.0.0.0/99' })).toThrow(/PARLEY_EGRESS_ALLOW_PRIVATE/);
  });
});
