/** MSK listener ports (fixed by the service). */
export const MSK_SCRAM_PORT = 9096;
export const MSK_IAM_PORT = 9098;
