import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { ConnectionService, type ConnectionSchema } from '@parley/proto/parley/api/v1/connections_pb.js';
import { IntegrationsService, type Connection } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

type ConnectionFields = {
  name: string;
  baseUrl: string;
  credentialSecretId: string;
  credentialHeader: string;
  description: string;
  operations: {
    name: string;
    description: string;
    method: string;
    pathTemplate: string;
    scope: string;
    argumentsSchema?: JsonObject | undefined;
  }[];
};

// Named fields only: a connection's credential is a secret id here; its value never leaves the
// secrets service except into integrations' own tool-call request.
function fieldsOf(req: ConnectionFields) {
  return {
    name: req.name,
    baseUrl: req.baseUrl,
    credentialSecretId: req.credentialSecretId,
    credentialHeader: req.credentialHeader,
    description: req.description,
    operations: req.operations.map((o) => ({
      name: o.name,
      description: o.description,
      method: o.method,
      pathTemplate: o.pathTemplate,
      scope: o.scope,
      ...(o.argumentsSchema === undefined ? {} : { argumentsSchema: o.argumentsSchema }),
    })),
  };
}

function connectionOf(c: Connection | undefined): MessageInitShape<typeof ConnectionSchema> | undefined {
  if (c === undefined) return undefined;
  return {
    id: c.id,
    ...fieldsOf(c),
    ...(c.createdAt === undefined ? {} : { createdAt: c.createdAt }),
    ...(c.updatedAt === undefined ? {} : { updatedAt: c.updatedAt }),
  };
}

/**
 * connectionsModule serves parley.api.v1.ConnectionService, forwarded to the integrations service
 * with the caller's principal (the tenant comes from it; integrations re-checks connections:admin).
 */
export const connectionsModule = definePublicModule(
  ConnectionService,
  {
    createConnection: 'connections:admin',
    getConnection: 'connections:admin',
    listConnections: 'connections:admin',
    updateConnection: 'connections:admin',
    deleteConnection: 'connections:admin',
  },
  (router, deps: PublicDeps) => {
    const integrations = deps.client('integrations', IntegrationsService);
    router.service(ConnectionService, {
      async createConnection(req, ctx) {
        return { connection: connectionOf((await integrations.createConnection(fieldsOf(req), forward(ctx))).connection) };
      },
      async getConnection(req, ctx) {
        return {
          connection: connectionOf((await integrations.getConnection({ connectionId: req.connectionId }, forward(ctx))).connection),
        };
      },
      async listConnections(req, ctx) {
        const res = await integrations.listConnections({ pageSize: req.pageSize, pageToken: req.pageToken }, forward(ctx));
        return { connections: res.connections.map((c) => connectionOf(c)!), nextPageToken: res.nextPageToken };
      },
      async updateConnection(req, ctx) {
        const res = await integrations.updateConnection({ connectionId: req.connectionId, ...fieldsOf(req) }, forward(ctx));
        return { connection: connectionOf(res.connection) };
      },
      async deleteConnection(req, ctx) {
        await integrations.deleteConnection({ connectionId: req.connectionId }, forward(ctx));
        return {};
      },
    });
  },
);
