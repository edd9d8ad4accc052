// Tests that need a plain public stack (startPublicStack() without options) and leave it as they
// found it share one, each in a file of its own: TestGuardrailPolicy through the edge
// (guardrail-dry-run.cases.ts), gRPC server reflection (reflection.cases.ts) and @parley/client
// (test/client/client.cases.ts).
import { clientCases } from '../client/client.cases.js';
import { usePublicStack } from './fixture.js';
import { guardrailDryRunCases } from './guardrail-dry-run.cases.js';
import { reflectionCases } from './reflection.cases.js';

const shared = usePublicStack();

guardrailDryRunCases(shared);
reflectionCases(shared);
clientCases(shared);
