import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';

const ArtifactSchema = z.object({
  name: z.string().min(1).max(255),
  contentType: z.string().min(1).max(200).default('application/octet-stream'),
  base64: z.string(),
});

// Loose: the echo of a payload is the payload, whatever else it carries.
export const EchoPayloadSchema = z.looseObject({ artifact: ArtifactSchema.optional() });
export type EchoPayload = z.infer<typeof EchoPayloadSchema>;

/**
 * The payload itself; an `artifact` comes back described (its bytes travel as the binary artifact). Loose:
 * whatever else the payload carried is echoed too.
 */
export const EchoResultSchema = z.looseObject({
  artifact: z
    .object({ name: z.string(), contentType: z.string(), size: z.number().int().nonnegative() })
    .optional(),
});
export type EchoResult = z.infer<typeof EchoResultSchema>;

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export const echoHandler: TaskHandler<EchoPayload, EchoResult> = {
  capability: 'echo',
  description:
    'Returns its payload unchanged; an optional {name, contentType, base64} artifact comes back as a binary artifact.',
  payloadSchema: EchoPayloadSchema,
  resultSchema: EchoResultSchema,
  idempotent: true,
  readOnly: true,
  artifactTypes: ['*'],
  async run(payload) {
    const { artifact, ...rest } = payload;
    if (!artifact) return { output: rest };
    if (artifact.base64.length % 4 !== 0 || !BASE64_RE.test(artifact.base64)) {
      throw new FleetError('invalid_payload', 'invalid payload for "echo" at artifact.base64: not base64');
    }
    const data = Buffer.from(artifact.base64, 'base64');
    return {
      output: {
        ...rest,
        artifact: { name: artifact.name, contentType: artifact.contentType, size: data.length },
      },
      artifacts: [{ name: artifact.name, contentType: artifact.contentType, data }],
    };
  },
};
