/* eslint-disable @typescript-eslint/no-explicit-any -- pod specs are read as the API server reads them, not typed */
// The Kubernetes Pod Security Standards' `restricted` profile as checks on a pod spec, control by
// control as https://kubernetes.io/docs/concepts/security/pod-security-standards/ lists them
// (baseline controls included, since restricted builds on baseline), so that manifests can be
// checked offline the way a namespace labelled pod-security.kubernetes.io/enforce=restricted
// admits or refuses them.

// Capabilities baseline allows to be added; restricted allows only NET_BIND_SERVICE.
const RESTRICTED_ADDABLE = ['NET_BIND_SERVICE'];
const RESTRICTED_VOLUME_TYPES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
];
const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
];
const SELINUX_TYPES = [undefined, '', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];

/** restrictedViolations lists every way a pod spec breaks the `restricted` Pod Security profile; empty when it complies. */
export function restrictedViolations(pod: any, annotations: Record<string, string> = {}): string[] {
  const problems: string[] = [];
  const psc = pod.securityContext ?? {};
  const containers: any[] = [...(pod.initContainers ?? []), ...(pod.containers ?? []), ...(pod.ephemeralContainers ?? [])];
  if (psc.windowsOptions?.hostProcess === true) problems.push('pod: windowsOptions.hostProcess');
  for (const ns of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[ns] === true) problems.push(`pod: ${ns}`);
  for (const v of pod.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (type === 'hostPath') problems.push(`volume ${v.name}: hostPath`);
    else if (type !== undefined && !RESTRICTED_VOLUME_TYPES.includes(type)) problems.push(`volume ${v.name}: type ${type}`);
  }
  for (const sysctl of psc.sysctls ?? []) if (!SAFE_SYSCTLS.includes(sysctl.name)) problems.push(`pod: sysctl ${sysctl.name}`);
  if (!SELINUX_TYPES.includes(psc.seLinuxOptions?.type)) problems.push(`pod: seLinuxOptions.type ${psc.seLinuxOptions?.type}`);
  if (psc.seLinuxOptions?.user !== undefined || psc.seLinuxOptions?.role !== undefined) problems.push('pod: seLinuxOptions user/role');
  if (psc.appArmorProfile !== undefined && !['RuntimeDefault', 'Localhost'].includes(psc.appArmorProfile.type))
    problems.push(`pod: appArmorProfile ${psc.appArmorProfile.type}`);
  for (const [key, value] of Object.entries(annotations))
    if (key.startsWith('container.apparmor.security.beta.kubernetes.io/') && value !== 'runtime/default' && !value.startsWith('localhost/'))
      problems.push(`pod: annotation ${key}=${value}`);
  if (psc.runAsUser === 0) problems.push('pod: runAsUser 0');
  if (psc.seccompProfile?.type === 'Unconfined') problems.push('pod: seccompProfile Unconfined');
  for (const c of containers) {
    const where = `container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (sc.windowsOptions?.hostProcess === true) problems.push(`${where}: windowsOptions.hostProcess`);
    if (sc.privileged === true) problems.push(`${where}: privileged`);
    for (const port of c.ports ?? []) if ((port.hostPort ?? 0) !== 0) problems.push(`${where}: hostPort ${port.hostPort}`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') problems.push(`${where}: procMount ${sc.procMount}`);
    if (!SELINUX_TYPES.includes(sc.seLinuxOptions?.type)) problems.push(`${where}: seLinuxOptions.type ${sc.seLinuxOptions?.type}`);
    if (sc.seLinuxOptions?.user !== undefined || sc.seLinuxOptions?.role !== undefined) problems.push(`${where}: seLinuxOptions user/role`);
    if (sc.appArmorProfile !== undefined && !['RuntimeDefault', 'Localhost'].includes(sc.appArmorProfile.type))
      problems.push(`${where}: appArmorProfile ${sc.appArmorProfile.type}`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
    if (sc.runAsNonRoot !== true && psc.runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
    if (sc.runAsNonRoot === false) problems.push(`${where}: runAsNonRoot false`);
    if (sc.runAsUser === 0) problems.push(`${where}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${where}: seccompProfile ${seccomp ?? 'unset'}`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities.drop lacks ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (!RESTRICTED_ADDABLE.includes(cap)) problems.push(`${where}: adds capability ${cap}`);
  }
  return problems;
}
