import { MemberService } from '@parley/proto/parley/api/v1/members_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { forward, relabel, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

/** membersModule serves parley.api.v1.MemberService, forwarded to identity. */
export const membersModule = definePublicModule(
  MemberService,
  { addMember: 'members:admin', listMembers: 'members:admin', updateMemberRole: 'members:admin', removeMember: 'members:admin' },
  (router, deps: PublicDeps) => {
    const identity = deps.client('identity', IdentityService);
    router.service(MemberService, {
      async addMember(req, ctx) {
        return {
          member: relabel(
            (await identity.addMember({ email: req.email, displayName: req.displayName, role: req.role }, forward(ctx))).member,
          ),
        };
      },
      async listMembers(_req, ctx) {
        return { members: (await identity.listMembers({}, forward(ctx))).members.map((m) => relabel(m)!) };
      },
      async updateMemberRole(req, ctx) {
        return { member: relabel((await identity.updateMemberRole({ memberId: req.memberId, role: req.role }, forward(ctx))).member) };
      },
      async removeMember(req, ctx) {
        await identity.removeMember({ memberId: req.memberId }, forward(ctx));
        return {};
      },
    });
  },
);
