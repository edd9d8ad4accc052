import { WorkspaceService } from '@parley/proto/parley/api/v1/workspaces_pb.js';
import { WorkspaceAdminService } from '@parley/proto/parley/identity/v1/workspaces_pb.js';
import { forward, relabel, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

/** workspacesModule serves parley.api.v1.WorkspaceService (deployment administration), forwarded to identity. */
export const workspacesModule = definePublicModule(
  WorkspaceService,
  {
    createWorkspace: 'deployment:admin',
    listWorkspaces: 'deployment:admin',
    suspendWorkspace: 'deployment:admin',
    addWorkspaceOwner: 'deployment:admin',
  },
  (router, deps: PublicDeps) => {
    const identity = deps.client('identity', WorkspaceAdminService);
    router.service(WorkspaceService, {
      async createWorkspace(req, ctx) {
        const res = await identity.createWorkspace(
          { name: req.name, ownerEmail: req.ownerEmail, ownerDisplayName: req.ownerDisplayName },
          forward(ctx),
        );
        return { workspace: relabel(res.workspace), ownerMemberId: res.ownerMemberId };
      },
      async listWorkspaces(_req, ctx) {
        return { workspaces: (await identity.listWorkspaces({}, forward(ctx))).workspaces.map((w) => relabel(w)!) };
      },
      async suspendWorkspace(req, ctx) {
        return { workspace: relabel((await identity.suspendWorkspace({ workspaceId: req.workspaceId }, forward(ctx))).workspace) };
      },
      async addWorkspaceOwner(req, ctx) {
        const res = await identity.addWorkspaceOwner(
          { workspaceId: req.workspaceId, email: req.email, displayName: req.displayName },
          forward(ctx),
        );
        return { memberId: res.memberId };
      },
    });
  },
);
