export {
  Autoscaler,
  type AutoscalerOptions,
  type ScalingDecision,
  type ScalingDecisionInputs,
  type ScalingDecisionListener,
  type ScalingTarget,
} from './autoscaler.js';
export {
  SystemHostResources,
  cgroupHeadroom,
  parseMemAvailable,
  type HostResources,
} from './host-resources.js';
export {
  SCALING_ACTIONS,
  decideScale,
  scalingPolicyFromConfig,
  type Recommendation,
  type ScalingAction,
  type ScalingPolicy,
  type ScalingRuleInput,
  type ScalingSignal,
  type ScalingVerdict,
} from './scaling-rule.js';
