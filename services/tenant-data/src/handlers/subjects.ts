import { auditDetails, changeActor } from '@parley/audit-outbox';
import { InvalidArgumentError } from '@parley/platform';
import { createSubject, findSubjectByContact, findSubjectByExternalRef, getSubject, setDoNotContact } from '../subject.store.js';
import { blank, tenantScopes, type TenantDataDeps, type TenantDataHandlers } from './deps.js';
import { subjectMessage } from './messages.js';

/**
 * subjectHandlers create, read and find subjects and keep the do-not-contact list; phone numbers
 * and e-mail addresses are kept only as peppered hashes.
 */
export function subjectHandlers(
  deps: TenantDataDeps,
): TenantDataHandlers<'createSubject' | 'getSubject' | 'findSubject' | 'setDoNotContact'> {
  const { inTenant, audited } = tenantScopes(deps);
  const pepper = deps.subjectHashPepper;
  return {
    async createSubject(req, ctx) {
      const subject = await inTenant(req.tenantId, ctx, (trx) =>
        createSubject(
          trx,
          {
            ...(blank(req.externalRef) === undefined ? {} : { externalRef: req.externalRef }),
            ...(blank(req.phone) === undefined ? {} : { phone: req.phone }),
            ...(blank(req.email) === undefined ? {} : { email: req.email }),
          },
          pepper,
        ),
      );
      return { subject: subjectMessage(subject) };
    },

    async getSubject(req, ctx) {
      return { subject: subjectMessage(await inTenant(req.tenantId, ctx, (trx) => getSubject(trx, req.subjectId))) };
    },

    async findSubject(req, ctx) {
      const given = (['external_ref', 'phone', 'email'] as const).filter((f) => (f === 'external_ref' ? req.externalRef : req[f]) !== '');
      if (given.length !== 1) {
        throw new InvalidArgumentError(
          `give exactly one of external_ref, phone, email (got ${given.length === 0 ? 'none' : given.join(', ')})`,
          { field: 'external_ref' },
        );
      }
      const subject = await inTenant(req.tenantId, ctx, (trx) => {
        if (req.externalRef !== '') return findSubjectByExternalRef(trx, req.externalRef);
        return findSubjectByContact(trx, req.phone !== '' ? { phone: req.phone } : { email: req.email }, pepper);
      });
      return { subject: subjectMessage(subject) };
    },

    async setDoNotContact(req, ctx) {
      if ((req.subjectId === '') === (req.phone === ''))
        throw new InvalidArgumentError('give exactly one of subject_id and phone', { field: 'subject_id' });
      const by = req.subjectId !== '' ? 'subject_id' : 'phone';
      const subject = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const s = await setDoNotContact(
          trx,
          req.subjectId !== '' ? { subjectId: req.subjectId } : { phone: req.phone },
          req.doNotContact,
          pepper,
        );
        // The number is never in the event: the subject id names the person.
        await record({
          ...changeActor(ctx, tenant),
          action: 'subject.do_not_contact',
          target: { type: 'subject', id: s.id },
          details: auditDetails({ do_not_contact: req.doNotContact, by }, ['do_not_contact', 'by']),
        });
        return s;
      });
      return { subject: subjectMessage(subject) };
    },
  };
}
